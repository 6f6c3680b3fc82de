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

/** A JSON response of `schema`, for a route's `responses`. */
export const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/** A required JSON request body of `schema`, for a route's `request.body`. */
export const jsonBody = <T extends z.ZodType>(schema: T) => ({ required: true, content: { "application/json": { schema } } });

/** An error response (the standard error body) with what it means for this route. */
export const errorResponse = (description: string) => json(ErrorSchema, description);

export const commonErrors = {
  400: errorResponse("Invalid input"),
  401: errorResponse("Missing, expired or forged credentials"),
  403: errorResponse("Not allowed"),
  404: errorResponse("Not found"),
  409: errorResponse("Conflicts with the current state"),
  413: errorResponse("Request body too large"),
};

export const UuidParam = z.string().uuid();
