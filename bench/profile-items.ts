// The Users items bench/profile.ts seeds and bench/plan-profile.ts rebuilds: one definition.
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { KEY_ALICE, KEY_BOB } from "../tests/helpers/keys.ts";

export function profileUser(i: number): Record<string, AttributeValue> {
  return {
    Name: { S: `user${i}` },
    UID: { N: String(10000 + i) },
    GID: { N: String(10000 + i) },
    RealName: { S: `User ${i}` },
    Home: { S: `/home/user${i}` },
    Shell: { S: "/bin/bash" },
    Password: { S: "$6$saltsaltsaltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/" },
    SSHPublicKeys: { SS: i % 2 ? [KEY_ALICE] : [KEY_ALICE, KEY_BOB] },
  };
}
