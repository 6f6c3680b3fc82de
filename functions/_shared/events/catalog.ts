// Payload schemas of every event type in notify.event_types. Consumers (webhooks, notifications,
// clients) can rely on these shapes; a test checks this list against the database catalog.
import { z } from "zod";

const uuid = z.string().uuid();

/** An object in an org bucket (private.org_buckets), as the storage events carry it. */
const storageObject = z.object({
  bucket_id: z.string(),
  name: z.string(),
  size: z.number().int().nullable(),
  mimetype: z.string().nullable(),
  owner_id: z.string().nullable(),
});

/** An AI job's outcome; `error` is the failure's code (null on success). */
const aiJob = z.object({
  job_id: uuid,
  modality: z.string(),
  source: z.string(),
  user_id: uuid.nullable(),
  credits: z.number().int(),
  error: z.string().nullable(),
});

/** A content document event: ids only, so nothing of a private document reaches org channels. */
const contentDocument = z.object({ document_id: uuid, kind: z.string() });

/** A talking-video upload's verdict; the reason is set when it was rejected. */
const videoUpload = z.object({
  upload_id: uuid,
  kind: z.enum(["photo", "audio"]).nullable(),
  user_id: uuid.nullable(),
  reject_code: z.string().nullable(),
  reject_reason: z.string().nullable(),
});

/** A talking video's end: seconds and credits settled, or the failure's code. */
const videoJob = z.object({
  job_id: uuid,
  user_id: uuid.nullable(),
  tier: z.string(),
  seconds: z.number().nullable(),
  credits: z.number().int(),
  error: z.string().nullable(),
});

/** A deck generation's end: what it made and what was charged, or the failure's code. */
const deckGeneration = z.object({
  generation_id: uuid,
  deck_id: uuid,
  user_id: uuid.nullable(),
  cards: z.number().int(),
  images: z.number().int(),
  images_failed: z.number().int(),
  credits: z.number().int(),
  error: z.string().nullable(),
});

/** An AI card operation's outcome: applied (with the revision it made), a conflict, or failed. */
const deckOperation = z.object({
  operation_id: uuid,
  document_id: uuid,
  card_id: z.string(),
  op: z.enum(["rewrite", "translate", "condense", "expand", "tone"]),
  actor_id: uuid.nullable(),
  resulting_revision: z.number().int().nullable(),
  error: z.string().nullable(),
});

export const EVENT_PAYLOADS = {
  "org.created": z.object({ name: z.string(), slug: z.string() }),
  "org.updated": z.object({ name: z.string(), slug: z.string(), require_mfa: z.boolean(), changed: z.array(z.string()) }),
  "member.invited": z.object({ invitation_id: uuid, email: z.string(), role: z.string(), expires_at: z.string() }),
  "member.joined": z.object({ user_id: uuid, role: z.string() }),
  "member.role_changed": z.object({ user_id: uuid, old_role: z.string(), new_role: z.string() }),
  "member.removed": z.object({ user_id: uuid, role: z.string() }),
  "api_key.created": z.object({ api_key_id: uuid, name: z.string(), prefix: z.string(), scopes: z.array(z.string()) }),
  "api_key.revoked": z.object({ api_key_id: uuid, name: z.string(), prefix: z.string() }),
  /** Keys revoked because their creator left, was removed, lost permissions or was deleted (sensitive: key metadata). */
  "member.api_keys_revoked": z.object({
    user_id: uuid,
    reason: z.enum(["creator_removed", "creator_left", "creator_lost_permissions", "creator_deleted"]),
    role: z.string().nullable(),
    api_keys: z.array(z.object({ api_key_id: uuid, name: z.string(), prefix: z.string(), scopes: z.array(z.string()) })),
    key_count: z.number().int(),
    key_names: z.string(),
    why: z.string(),
  }),
  "webhook.test": z.object({ endpoint_id: uuid, message: z.string() }),
  "webhook.endpoint_disabled": z.object({ endpoint_id: uuid, url: z.string(), reason: z.string(), failing_since: z.string().nullable() }),
  "storage.object_created": storageObject.extend({ previous_name: z.null() }),
  /** Overwritten, or moved (renamed): then previous_name is the old name. */
  "storage.object_updated": storageObject.extend({ previous_name: z.string().nullable() }),
  "storage.object_deleted": storageObject.extend({ previous_name: z.null() }),
  "ai.job_succeeded": aiJob,
  "ai.job_failed": aiJob,
  "billing.subscription_changed": z.object({
    subscription_id: z.string(),
    status: z.string(),
    plan_key: z.string().nullable(),
    previous_status: z.string().nullable(),
    previous_plan_key: z.string().nullable(),
  }),
  "billing.credits_granted": z.object({ amount: z.number().int(), category: z.enum(["subscription", "pack"]), source_ref: z.string() }),
  "billing.credits_clawed_back": z.object({
    amount: z.number().int(),
    clawed_back: z.number().int(),
    debt: z.number().int(),
    reason: z.enum(["refund", "dispute"]),
    source_ref: z.string(),
  }),
  "billing.payment_failed": z.object({ invoice_id: z.string(), subscription_id: z.string().nullable(), amount_due: z.number().int(), currency: z.string() }),
  "billing.payment_action_required": z.object({ invoice_id: z.string(), subscription_id: z.string().nullable(), hosted_invoice_url: z.string().nullable() }),
  "content.document_created": contentDocument.extend({ visibility: z.enum(["private", "org", "link", "public"]) }),
  "content.document_published": contentDocument.extend({ visibility: z.enum(["private", "org", "link", "public"]) }),
  "content.document_deleted": contentDocument,
  /** Sensitive (the document's title): one per person and thread until they read it. */
  "content.comment_mentioned": z.object({
    document_id: uuid,
    thread_id: uuid,
    comment_id: uuid,
    user_id: uuid,
    document_title: z.string(),
    excerpt: z.string(),
  }),
  "content.asset_verified": z.object({ asset_id: uuid, document_id: uuid, mime_type: z.string(), size_bytes: z.number().int() }),
  "content.asset_rejected": z.object({
    asset_id: uuid,
    document_id: uuid,
    user_id: uuid.nullable(),
    filename: z.string(),
    document_title: z.string(),
    reason: z.string(),
  }),
  "video.upload_validated": videoUpload,
  "video.upload_rejected": videoUpload,
  "video.job_completed": videoJob,
  "video.job_failed": videoJob,
  "deck.generation_completed": deckGeneration,
  "deck.generation_failed": deckGeneration,
  "deck.operation_applied": deckOperation,
  "deck.operation_conflict": deckOperation,
  "deck.operation_failed": deckOperation,
} as const satisfies Record<string, z.ZodType>;

export type EventType = keyof typeof EVENT_PAYLOADS;
export const EVENT_TYPES = Object.keys(EVENT_PAYLOADS) as EventType[];

/** An outbox row as consumers receive it. */
export interface OutboxEvent {
  id: string;
  seq: number;
  org_id: string;
  type: string;
  schema_version: number;
  subject_kind: string;
  subject_id: string;
  actor_user_id: string | null;
  actor_api_key_id: string | null;
  payload: Record<string, unknown>;
  occurred_at: string;
}

/** The envelope external consumers (webhooks, realtime clients) see. */
export function envelope(e: OutboxEvent) {
  return {
    id: e.id,
    type: e.type,
    schema_version: e.schema_version,
    org_id: e.org_id,
    subject: { kind: e.subject_kind, id: e.subject_id },
    actor: e.actor_user_id ? { kind: "user", id: e.actor_user_id } : e.actor_api_key_id ? { kind: "api_key", id: e.actor_api_key_id } : null,
    occurred_at: e.occurred_at,
    data: e.payload,
  };
}
