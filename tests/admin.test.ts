import { afterAll, beforeAll, expect, test } from "bun:test";
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import { ddum, writeConfig } from "./helpers/ddum.ts";
import { type Dynamo, startDynalite } from "./helpers/dynalite.ts";

let d: Dynamo;
beforeAll(async () => {
  d = await startDynalite();
});
afterAll(() => d.close());

test("tables create makes both tables with the Name key, and is idempotent", async () => {
  const cfg = writeConfig(d, { user_table_name: "People", group_table_name: "Teams" });
  const first = await ddum(["tables", "create", "-c", cfg]);
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  expect(first.stdout).toBe("created table People (on-demand); it is active\ncreated table Teams (on-demand); it is active\n");
  for (const t of ["People", "Teams"]) {
    const desc = (await d.client.send(new DescribeTableCommand({ TableName: t }))).Table!;
    expect(desc.TableStatus).toBe("ACTIVE");
    expect(desc.KeySchema).toEqual([{ AttributeName: "Name", KeyType: "HASH" }]);
    expect(desc.AttributeDefinitions).toEqual([{ AttributeName: "Name", AttributeType: "S" }]);
  }
  const again = await ddum(["tables", "create", "-c", cfg]);
  expect(again.code).toBe(0);
  expect(again.stdout).toBe("table People already exists; left as it is\ntable Teams already exists; left as it is\n");
});

test("tables create --billing provisioned; a bad billing mode or action is a usage error", async () => {
  const cfg = writeConfig(d, { user_table_name: "Users2", group_table_name: "Groups2" });
  const r = await ddum(["tables", "create", "--billing", "provisioned", "-c", cfg]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const desc = (await d.client.send(new DescribeTableCommand({ TableName: "Users2" }))).Table!;
  expect(desc.ProvisionedThroughput?.ReadCapacityUnits).toBe(5);
  expect((await ddum(["tables", "create", "--billing", "free", "-c", cfg])).code).toBe(2);
  const bad = await ddum(["tables", "drop", "-c", cfg]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('unknown action "tables drop"');
});
