// A project's JWKS endpoint for tests: an ES256 key pair, the public half served over HTTP
// the way GoTrue serves /auth/v1/.well-known/jwks.json.
import http from "node:http";
import { exportJWK, generateKeyPair } from "jose";

export async function startJwksServer(port: number) {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = "plinth-test-key";
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: "ES256" };
  const server = http.createServer((req, res) => {
    if (req.url === "/auth/v1/.well-known/jwks.json") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [publicJwk] }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${port}/auth/v1/.well-known/jwks.json`,
    privateJwk,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
