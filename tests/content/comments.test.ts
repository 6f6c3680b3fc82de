// Comments: threads resolve and reopen; anchors made of Yjs relative positions survive edits
// around them and show "on deleted content" once their text is gone (never dropped); element
// anchors follow their element; mentions are checked against read access and notify once per
// thread until read, through the events backbone.
import * as Y from "yjs";
import { beforeAll, describe, expect, it } from "vitest";
import { checklistItemText } from "../../functions/_shared/content/kinds/checklist.ts";
import { toBase64 } from "../../functions/_shared/content/ydoc.ts";
import { admin, as, createTeam, createUser, expectSqlError, type Team } from "../helpers/db.ts";
import { compact, contentRpc, createDoc, eventually, LiveEditor, note } from "../helpers/content.ts";
import { notificationsFor } from "../helpers/notifications.ts";

let team: Team;
beforeAll(async () => {
  team = await createTeam("Comments");
});

const text = (t: string) => JSON.stringify([{ type: "text", text: t }]);
const mention = (userId: string, t = " look") => JSON.stringify([{ type: "mention", user_id: userId }, { type: "text", text: t }]);

async function thread(id: string) {
  const { rows } = await admin.query("select * from content.comment_threads where id = $1", [id]);
  return rows[0];
}

function textOf(editor: LiveEditor): Y.XmlText {
  return (editor.doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText;
}

/** The anchor a client makes for a selection: relative positions, the end sticking to its left. */
function anchorFor(t: Y.Text, start: number, end: number, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    rel_start: toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(t, start))),
    rel_end: toBase64(Y.encodeRelativePosition(Y.createRelativePositionFromTypeIndex(t, end, -1))),
    quoted_text: t.toString().slice(start, end),
    ...extra,
  });
}

describe("anchors", () => {
  it("survive edits around them, then show as on deleted content once the text is gone; the thread stays", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("The quick brown fox jumps") });
    const a = new LiveEditor(team.owner, doc.id);
    const b = new LiveEditor(team.member, doc.id);
    await a.join();
    await b.join();
    const [c] = await contentRpc<{ thread_id: string }>(team.member, "add_comment", {
      p_document_id: doc.id, p_body: text("which fox?"), p_anchor: anchorFor(textOf(b), 16, 19),
    });
    expect(await thread(c.thread_id)).toMatchObject({ anchor_status: "anchored" });

    // Edits before, after and right up to both ends, from both clients.
    textOf(a).insert(0, "Yes! ");
    textOf(b).insert(textOf(b).length, " over the dog");
    await Promise.all([a.flush(), b.flush()]);
    await eventually(async () => textOf(a).toString() === textOf(b).toString());
    textOf(a).delete(5 + 4, 6); // "quick "
    textOf(b).insert(textOf(b).toString().indexOf("fox") + 3, "y");
    await Promise.all([a.flush(), b.flush()]);
    await compact(doc.id);
    // Typing right after the range does not extend it (its end sticks to the "x").
    expect(await thread(c.thread_id)).toMatchObject({ anchor_status: "anchored", anchor_text: "fox" });

    // Compaction garbage-collects deleted text; the anchor was re-encoded at surviving characters.
    await eventually(async () => textOf(a).toString() === textOf(b).toString());
    const t = textOf(a);
    t.delete(t.toString().indexOf("foxy"), 2);
    await a.flush();
    await compact(doc.id);
    expect(await thread(c.thread_id)).toMatchObject({ anchor_status: "anchored", anchor_text: "x" });

    const now = textOf(a).toString();
    textOf(a).delete(now.indexOf("xy"), 1);
    await a.flush();
    await compact(doc.id);
    const gone = await thread(c.thread_id);
    expect(gone).toMatchObject({ anchor_status: "deleted" });
    const { rows } = await admin.query("select body_text from content.comments where thread_id = $1", [c.thread_id]);
    expect(rows).toEqual([{ body_text: "which fox?" }]);
    // Readers see the thread and its status.
    const seen = await as(team.viewer, async (cl) => (await cl.query("select anchor_status from content.comment_threads where id = $1", [c.thread_id])).rows);
    expect(seen).toEqual([{ anchor_status: "deleted" }]);
    await Promise.all([a.leave(), b.leave()]);
  });

  it("an anchor on a checklist item follows the item and is on deleted content once the item is removed", async () => {
    const doc = await createDoc(team.owner, team.orgId, {
      kind: "checklist", body: { items: [{ id: "a", text: "alpha", done: false }, { id: "b", text: "beta", done: false }] },
    });
    const e = new LiveEditor(team.owner, doc.id);
    await e.join();
    const [c] = await contentRpc<{ thread_id: string }>(team.owner, "add_comment", {
      p_document_id: doc.id, p_body: text("rename?"), p_anchor: anchorFor(checklistItemText(e.doc, "b")!, 0, 4, { element_id: "b" }),
    });
    // Moving another item and editing around keeps it anchored.
    e.doc.getArray("items").delete(0, 1);
    checklistItemText(e.doc, "b")!.insert(4, "!");
    await e.flush();
    await compact(doc.id);
    expect(await thread(c.thread_id)).toMatchObject({ anchor_status: "anchored", anchor_text: "beta" });
    e.doc.getArray("items").delete(0, 1);
    await e.flush();
    await compact(doc.id);
    expect(await thread(c.thread_id)).toMatchObject({ anchor_status: "deleted" });
    await e.leave();
  });

  it("refuses malformed anchors and bodies", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    for (const anchor of [{ quoted_text: "x" }, { rel_start: "AAAA" }, { element_id: "" }, { element_id: "a", colour: "red" }, { rel_start: "!!", rel_end: "!!" }]) {
      await expectSqlError(contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: text("x"), p_anchor: JSON.stringify(anchor) }), "22023");
    }
    for (const body of [[], [{ type: "text" }], [{ type: "bold", text: "x" }], [{ type: "mention", user_id: "nope" }], "x", [{ type: "text", text: "x".repeat(10001) }]]) {
      await expectSqlError(contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: JSON.stringify(body) }), "22023");
    }
    const { rows } = await admin.query("select count(*)::int as n from content.comment_threads where document_id = $1", [doc.id]);
    expect(rows[0].n).toBe(0);
  });
});

describe("threads", () => {
  it("commenters comment, resolve and reopen; a reply reopens; viewers of a private document's org cannot", async () => {
    const doc = await createDoc(team.member, team.orgId, { body: note("x") });
    const [first] = await contentRpc<{ id: string; thread_id: string }>(team.viewer, "add_comment", { p_document_id: doc.id, p_body: text("q") });
    const [resolved] = await contentRpc<{ resolved_at: string | null; resolved_by: string }>(team.member, "resolve_thread", { p_thread_id: first.thread_id });
    expect(resolved).toMatchObject({ resolved_at: expect.any(Date), resolved_by: team.member.id });
    await contentRpc(team.viewer, "add_comment", { p_document_id: doc.id, p_body: text("still?"), p_thread_id: first.thread_id });
    expect((await thread(first.thread_id)).resolved_at).toBeNull();
    await contentRpc(team.viewer, "resolve_thread", { p_thread_id: first.thread_id });
    await contentRpc(team.viewer, "resolve_thread", { p_thread_id: first.thread_id, p_resolved: false });
    expect((await thread(first.thread_id)).resolved_at).toBeNull();

    const secret = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    await expectSqlError(contentRpc(team.member, "add_comment", { p_document_id: secret.id, p_body: text("hi") }), "PT404");
    await expectSqlError(contentRpc(team.member, "resolve_thread", { p_thread_id: crypto.randomUUID() }), "PT404");
    await expectSqlError(contentRpc(team.viewer, "add_comment", { p_document_id: doc.id, p_body: text("x"), p_thread_id: crypto.randomUUID() }), "PT404");
    // Only the author edits; the author or a manager deletes, and the place in the thread stays.
    await expectSqlError(contentRpc(team.member, "edit_comment", { p_comment_id: first.id, p_body: text("mine now") }), "42501");
    const [edited] = await contentRpc<{ body_text: string; edited_at: Date }>(team.viewer, "edit_comment", { p_comment_id: first.id, p_body: text("q2") });
    expect(edited).toMatchObject({ body_text: "q2", edited_at: expect.any(Date) });
    await expectSqlError(contentRpc(team.admin, "delete_comment", { p_comment_id: crypto.randomUUID() }), "PT404");
    const [deleted] = await contentRpc<{ body_text: string; deleted_at: Date }>(team.member, "delete_comment", { p_comment_id: first.id });
    expect(deleted).toMatchObject({ body_text: "", deleted_at: expect.any(Date) });
    // No direct writes at all.
    await expectSqlError(as(team.owner, (c) => c.query("update content.comments set body_text = 'x' where id = $1", [first.id])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("delete from content.comment_threads where id = $1", [first.thread_id])), "42501");
  });
});

describe("mentions", () => {
  it("are checked against the mentioned person's read access", async () => {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    await expectSqlError(contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(team.member.id) }), "22023", /cannot read/);
    const stranger = await createUser();
    await contentRpc(team.owner, "share_with_user", { p_document_id: doc.id, p_level: "view", p_user_id: stranger.id });
    const [c] = await contentRpc<{ mentions: string[] }>(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(stranger.id) });
    expect(c.mentions).toEqual([stranger.id]);
  });

  it("notify once per thread until read, then again; never the author", async () => {
    const doc = await createDoc(team.owner, team.orgId, { title: "Roadmap", body: note("x") });
    const [c1] = await contentRpc<{ thread_id: string }>(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(team.member.id) });
    await contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(team.member.id, " again"), p_thread_id: c1.thread_id });
    await contentRpc(team.admin, "add_comment", { p_document_id: doc.id, p_body: mention(team.member.id, " and me"), p_thread_id: c1.thread_id });
    await contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(team.owner.id, " self") });
    const { rows: events } = await admin.query(
      "select payload from notify.events where type = 'content.comment_mentioned' and payload ->> 'document_id' = $1", [doc.id]);
    expect(events.map((e) => e.payload.user_id)).toEqual([team.member.id]);
    const notes = await eventually(async () => {
      const n = await notificationsFor(team.member.id, "content.comment_mentioned");
      return n.length ? n : null;
    });
    expect(notes).toHaveLength(1);
    expect(notes![0]).toMatchObject({ title: expect.stringContaining("mentioned you"), link: `/documents/${doc.id}?thread=${c1.thread_id}` });
    expect(notes![0].body).toContain("Roadmap");
    // Read: the next mention in the thread notifies again.
    await admin.query("update notify.notifications set read_at = now() where id = $1", [notes![0].id]);
    await contentRpc(team.owner, "add_comment", { p_document_id: doc.id, p_body: mention(team.member.id, " ping"), p_thread_id: c1.thread_id });
    const more = await eventually(async () => {
      const n = await notificationsFor(team.member.id, "content.comment_mentioned");
      return n.length === 2 ? n : null;
    });
    expect(more).toHaveLength(2);
    // The event is sensitive: it never goes out on the org channel, and plain members do not see it in the feed.
    const feed = await as(team.viewer, async (c) => (await c.query("select count(*)::int as n from notify.activity where type = 'content.comment_mentioned' and org_id = $1", [team.orgId])).rows[0].n);
    expect(feed).toBe(0);
  });
});
