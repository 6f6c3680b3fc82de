// Response and error schemas shared by routes; they feed both validation and /openapi.json.
import { z } from "@hono/zod-openapi";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "forbidden" }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorSchema } },
});

export const commonErrors = {
  400: errorResponse("Invalid input"),
  401: errorResponse("Missing, expired or forged credentials"),
  403: errorResponse("Not allowed"),
  404: errorResponse("Not found"),
  409: errorResponse("Conflicts with the current state"),
  413: errorResponse("Request body too large"),
};

export const UuidParam = z.string().uuid();
