// The project URL: one port that routes /functions/v1, /storage/v1 and /realtime/v1 as a
// hosted project's gateway does, and refuses everything else.
import net from "node:net";
import { describe, expect, it } from "vitest";
import { stack } from "../helpers/db.ts";

describe("gateway", () => {
  it("forwards /functions/v1/<name> to the edge runtime with method, headers and body", async () => {
    const res = await fetch(`${stack.supabaseUrl}/functions/v1/api/health`);
    expect(res.status).toBe(200);
    // A body and a status from the function itself, not from the gateway.
    const bad = await fetch(`${stack.supabaseUrl}/functions/v1/api/orgs/not-a-uuid/invitations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(bad.status).toBe(401);
    expect((await bad.json()).error.code).toBeTypeOf("string");
  });

  it("answers an unknown path with 404 and an unknown function with the runtime's 404", async () => {
    const res = await fetch(`${stack.supabaseUrl}/rest/v1/orgs`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ message: "no Route matched with those values" });
    const fn = await fetch(`${stack.supabaseUrl}/functions/v1/nope`);
    expect(fn.status).toBe(404);
    expect((await fn.json()).error.code).toBe("not_found");
  });

  it("refuses a WebSocket upgrade anywhere but /realtime/v1/websocket", async () => {
    const { port } = new URL(stack.supabaseUrl);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(Number(port), "127.0.0.1", () => {
        sock.write(
          "GET /storage/v1/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
      });
      let data = "";
      sock.on("data", (d) => (data += d.toString()));
      sock.on("end", () => resolve(data));
      sock.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 404/);
  });
});
