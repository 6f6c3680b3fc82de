// The talking-video module's routes (schema video; docs/video.md): uploads, jobs, exports and
// privacy requests, each in its own file (shared helpers in video-common.ts).
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { ApiEnv } from "../context.ts";
import { registerVideoExports } from "./video-exports.ts";
import { registerVideoJobs } from "./video-jobs.ts";
import { registerVideoPrivacy } from "./video-privacy.ts";
import { registerVideoUploads } from "./video-uploads.ts";

export function registerVideo(app: OpenAPIHono<ApiEnv>) {
  registerVideoUploads(app);
  registerVideoJobs(app);
  registerVideoExports(app);
  registerVideoPrivacy(app);
}
