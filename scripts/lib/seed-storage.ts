// Demo files for the seeded orgs, uploaded through the Storage stand-in (as an app would, with
// the service-role key) so that rows and bytes agree. Idempotent: existing files are kept.
import { encodePng } from "../../functions/_shared/ai/providers/local-media.ts";
import { SEED_ORGS } from "./seed-users.ts";

const FILES: { bucket?: string; name: string; type: string; body: (org: string) => BodyInit }[] = [
  { name: "welcome.md", type: "text/markdown", body: (org: string) => `# Welcome to ${org}\n\nFiles your org keeps live in this folder.\n` },
  { name: "brand/palette.json", type: "application/json", body: (org: string) => JSON.stringify({ org, primary: "#d94f2b", neutral: "#1f2328" }, null, 2) },
  // The demo portrait of sql/seed/07_video.sql (a placeholder picture the local face check accepts).
  { bucket: "photos", name: "demo/face.png", type: "image/png", body: () => encodePng(512, 640, [214, 160, 120], [60, 70, 90]) as BodyInit },
];

export async function seedStorage(supabaseUrl: string, serviceRoleKey: string): Promise<void> {
  for (const org of SEED_ORGS) {
    for (const f of FILES) {
      const res = await fetch(`${supabaseUrl}/storage/v1/object/${f.bucket ?? "org-files"}/${org.id}/${f.name}`, {
        method: "POST",
        headers: { authorization: `Bearer ${serviceRoleKey}`, apikey: serviceRoleKey, "content-type": f.type, "x-upsert": "false" },
        body: f.body(org.slug),
      });
      if (res.ok) continue;
      const err = (await res.json().catch(() => ({}))) as { statusCode?: string; message?: string };
      // 409: already there from an earlier start.
      if (err.statusCode !== "409") throw new Error(`seeding storage ${org.slug}/${f.name}: ${res.status} ${err.message ?? ""}`);
    }
  }
}
