import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export type Fault = "throttle" | "500" | "drop" | "in-use" | null;

/**
 * An HTTP proxy on 127.0.0.1 in front of a DynamoDB endpoint that injects faults: the decide
 * function sees each request's number, how many times the same request (same body) came
 * before (a retry) and the request's operation (X-Amz-Target, without the service prefix), and
 * says what to do with it.
 */
export async function startFaultProxy(target: string, decide: (n: number, attempt: number, operation: string) => Fault) {
  const t = new URL(target);
  let n = 0;
  const counts = { throttle: 0, "500": 0, drop: 0, "in-use": 0, passed: 0 };
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const number = n++;
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const key = `${req.headers["x-amz-target"]} ${Buffer.concat(chunks).toString()}`;
      const attempt = seen.get(key) ?? 0;
      seen.set(key, attempt + 1);
      const fault = decide(number, attempt, String(req.headers["x-amz-target"] ?? "").replace(/^DynamoDB_\d+\./, ""));
      if (fault === "drop") {
        counts.drop++;
        req.socket.destroy();
        return;
      }
      if (fault === "throttle" || fault === "500" || fault === "in-use") {
        counts[fault]++;
        const body =
          fault === "throttle"
            ? { __type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", message: "slow down" }
            : fault === "in-use"
              ? { __type: "com.amazonaws.dynamodb.v20120810#ResourceInUseException", message: "Attempt to change a resource which is still in use" }
              : { __type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "boom" };
        res.writeHead(fault === "500" ? 500 : 400, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify(body));
        return;
      }
      counts.passed++;
      const up = request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
