// Live co-editing through the real Realtime stand-in with yjs clients: concurrent editors
// converge, the compacted body equals their state, every delivered update is already in the
// database, late joiners catch up, cursors go on doc:<id>:cursor (readers may send there, never
// on doc:<id>), and the log refuses viewers, oversized batches and documents not yet live.
import * as Y from "yjs";
import { beforeAll, describe, expect, it } from "vitest";
import { noteText } from "../../functions/_shared/content/kinds/note.ts";
import { dominates, fromBase64 } from "../../functions/_shared/content/ydoc.ts";
import { checklistItemText } from "../../functions/_shared/content/kinds/checklist.ts";
import { admin, as, createTeam, expectSqlError, type Team } from "../helpers/db.ts";
import { broadcasts, rtClient, subscribe } from "../helpers/realtime.ts";
import { tokenFor } from "../helpers/supabase.ts";
import { compact, contentRpc, createDoc, docRow, eventually, LiveEditor, note, sameState } from "../helpers/content.ts";

let team: Team;
beforeAll(async () => {
  team = await createTeam("Live");
});

function typeInto(editor: LiveEditor, paragraph: number, text: string) {
  const p = editor.doc.getXmlFragment("default").get(paragraph) as Y.XmlElement;
  const t = p.get(0) as Y.XmlText;
  t.insert(t.length, text);
}

describe("two editors", () => {
  it("edit concurrently through Realtime, converge, and compaction stores exactly their state", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("Alpha: ", "Beta: ") });
    const a = new LiveEditor(team.owner, doc.id);
    const b = new LiveEditor(team.member, doc.id);
    await a.join();
    await b.join();
    for (let i = 0; i < 20; i++) {
      typeInto(a, 0, `a${i} `);
      typeInto(b, 1, `b${i} `);
      if (i % 5 === 4) typeInto(b, 0, `[b${i}]`);
      await new Promise((r) => setTimeout(r, 15));
    }
    await Promise.all([a.flush(), b.flush()]);
    expect([...a.errors, ...b.errors]).toEqual([]);
    await eventually(async () => sameState(a.doc, b.doc), 15_000);
    expect(sameState(a.doc, b.doc)).toBe(true);
    const text = noteText(a.doc);
    for (let i = 0; i < 20; i++) {
      expect(text).toContain(`a${i} `);
      expect(text).toContain(`b${i} `);
    }
    // Each editor received every batch the other pushed.
    for (const id of b.pushed) await a.received.waitFor((m) => m.update_id === id);
    for (const id of a.pushed) await b.received.waitFor((m) => m.update_id === id);

    await compact(doc.id);
    const row = await docRow(doc.id);
    const { note: kind } = await import("../../functions/_shared/content/kinds/note.ts");
    expect(row.body).toEqual(kind.fromYDoc(a.doc));
    expect(row.body_revision).toBe(row.revision);
    expect(row.search_text).toContain("a19");
    // A fresh client loading the compacted state gets the same document.
    const late = new LiveEditor(team.viewer, doc.id);
    await late.join();
    expect(sameState(late.doc, a.doc)).toBe(true);
    await Promise.all([a.leave(), b.leave(), late.leave()]);
  });

  it("a structured kind too: two people edit different checklist items and the same item's text", async () => {
    const doc = await createDoc(team.owner, team.orgId, {
      kind: "checklist",
      body: { items: [{ id: "one", text: "first", done: false }, { id: "two", text: "second", done: false }] },
    });
    const a = new LiveEditor(team.owner, doc.id);
    const b = new LiveEditor(team.admin, doc.id);
    await a.join();
    await b.join();
    checklistItemText(a.doc, "one")!.insert(5, " (owner)");
    checklistItemText(b.doc, "one")!.insert(0, "The ");
    b.doc.getArray<Y.Map<unknown>>("items").get(1).set("done", true);
    await Promise.all([a.flush(), b.flush()]);
    await eventually(async () => sameState(a.doc, b.doc));
    expect(checklistItemText(a.doc, "one")!.toString()).toBe("The first (owner)");
    await compact(doc.id);
    expect((await docRow(doc.id)).body).toEqual({
      items: [{ id: "one", text: "The first (owner)", done: false }, { id: "two", text: "second", done: true }],
    });
    await Promise.all([a.leave(), b.leave()]);
  });
});

describe("durable before delivered", () => {
  it("every broadcast update is already a committed row, with the revision it made", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const writer = new LiveEditor(team.owner, doc.id);
    const reader = new LiveEditor(team.viewer, doc.id);
    await writer.join();
    await reader.join();
    const seen: { update_id: number; revision: number; inDb: boolean | undefined }[] = [];
    // Committed means: the row is in the log, or compaction (the stack's worker runs it) already
    // merged it into the stored state.
    // Realtime sends what logical decoding reads from the WAL, so a broadcast follows its commit
    // record; another session can still miss the row for a moment, until the committing backend
    // marks itself done. A few short re-reads cover that, and only that: a batch that never
    // committed never shows up.
    const committed = async (payload: { update_id: number; revision: number; updates: string[] }) => {
      for (let i = 0; i < 20; i++) {
        const { rows } = await admin.query(
          `select (select revision from content.doc_updates where id = $1) as revision,
                  (select ystate_sv from content.live_states where document_id = $2) as sv`,
          [payload.update_id, doc.id],
        );
        const merged = payload.updates.every((u) => dominates(rows[0].sv, Y.encodeStateVectorFromUpdate(fromBase64(u))));
        if (rows[0].revision === payload.revision || merged) return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return false;
    };
    reader.channel.on("broadcast", { event: "update" }, ({ payload }) => {
      // Recorded in arrival order; whether it was committed is filled in when the reads finish.
      const entry: (typeof seen)[number] = { update_id: payload.update_id, revision: payload.revision, inDb: undefined };
      seen.push(entry);
      void committed(payload).then((ok) => (entry.inDb = ok));
    });
    for (let i = 0; i < 5; i++) {
      typeInto(writer, 0, String(i));
      await writer.flush();
    }
    await eventually(async () => seen.length === 5 && seen.every((s) => s.inDb !== undefined));
    expect(seen.map((s) => s.inDb)).toEqual([true, true, true, true, true]);
    expect(seen.map((s) => s.revision)).toEqual([2, 3, 4, 5, 6]);
    await Promise.all([writer.leave(), reader.leave()]);
  });

  it("a batch whose transaction rolls back is never delivered", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const reader = new LiveEditor(team.viewer, doc.id);
    await reader.join();
    await as(team.owner, async (c) => {
      await c.query("select * from content.push_updates($1, $2)", [doc.id, [Buffer.from([0, 0]).toString("base64")]]);
      throw Object.assign(new Error("client gave up"), { code: "XX" });
    }).catch(() => {});
    const w = new LiveEditor(team.owner, doc.id);
    await w.join();
    typeInto(w, 0, "after");
    await w.flush();
    const delivered = await reader.received.waitFor(() => true);
    // The first message to arrive is the committed one, with revision 2: the rolled-back batch's revision was reused.
    expect(delivered).toMatchObject({ update_id: w.pushed[0], revision: 2 });
    await Promise.all([reader.leave(), w.leave()]);
  });
});

describe("late joiners", () => {
  it("subscribe first, then load state and log: nothing committed in between is missed", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("start ") });
    const a = new LiveEditor(team.owner, doc.id);
    await a.join();
    // Keep typing while the second client joins.
    let typing = true;
    const typist = (async () => {
      for (let i = 0; typing; i++) {
        typeInto(a, 0, `${i},`);
        await a.flush();
      }
    })();
    const b = new LiveEditor(team.member, doc.id);
    await b.join();
    typing = false;
    await typist;
    await eventually(async () => sameState(a.doc, b.doc));
    expect(sameState(a.doc, b.doc)).toBe(true);
    await Promise.all([a.leave(), b.leave()]);
  });
});

describe("topics and the log's guards", () => {
  it("readers send cursors on doc:<id>:cursor and track presence; nobody broadcasts on doc:<id>", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const viewer = await rtClient({ token: await tokenFor(team.viewer) });
    const owner = await rtClient({ token: await tokenFor(team.owner) });
    const ownerSender = await rtClient({ token: await tokenFor(team.owner) });
    const ownerCursor = owner.channel(`doc:${doc.id}:cursor`, { config: { private: true } });
    const cursorsSeen = broadcasts(ownerCursor);
    await subscribe(ownerCursor);
    const viewerCursor = viewer.channel(`doc:${doc.id}:cursor`, { config: { private: true, broadcast: { ack: true } } });
    await subscribe(viewerCursor);
    expect(await viewerCursor.send({ type: "broadcast", event: "cursor", payload: { anchor: 3, head: 3 } })).toBe("ok");
    await cursorsSeen.waitFor((m) => m.event === "cursor");
    expect(await viewerCursor.track({ name: "Victor" })).toBe("ok");

    const ownerDoc = owner.channel(`doc:${doc.id}`, { config: { private: true } });
    const docSeen = broadcasts(ownerDoc);
    await subscribe(ownerDoc);
    const viewerDoc = viewer.channel(`doc:${doc.id}`, { config: { private: true, broadcast: { ack: true } } });
    await subscribe(viewerDoc);
    const ownerSend = ownerSender.channel(`doc:${doc.id}`, { config: { private: true, broadcast: { ack: true } } });
    await subscribe(ownerSend);
    // Denied sends are dropped without a reply, so an ack'd send times out: not even an editor
    // may put an update on doc:<id> without the log.
    expect(await viewerDoc.send({ type: "broadcast", event: "update", payload: { forged: true } }, { timeout: 1500 })).toBe("timed out");
    expect(await ownerSend.send({ type: "broadcast", event: "update", payload: { forged: true } }, { timeout: 1500 })).toBe("timed out");
    expect(docSeen.items.filter((m) => m.payload?.forged)).toEqual([]);
  });

  it("someone who cannot read the document cannot join its channels", async () => {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    const member = await rtClient({ token: await tokenFor(team.member) });
    await expect(subscribe(member.channel(`doc:${doc.id}`, { config: { private: true } }))).rejects.toThrow(/Unauthorized/);
    await expect(subscribe(member.channel(`doc:${doc.id}:cursor`, { config: { private: true } }))).rejects.toThrow(/Unauthorized/);
  });

  it("refuses viewers, oversized and malformed batches, unknown documents, and documents not live yet; nothing is logged", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const before = await docRow(doc.id);
    await expectSqlError(contentRpc(team.viewer, "push_updates", { p_document_id: doc.id, p_updates: ["AAA="] }), "42501");
    const big = Buffer.alloc(131073, 1).toString("base64");
    await expectSqlError(contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: [big] }), "22023", /128 KiB/);
    await expectSqlError(contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: ["not base64!"] }), "22023");
    await expectSqlError(contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: [] }), "22023");
    await expectSqlError(contentRpc(team.owner, "push_updates", { p_document_id: crypto.randomUUID(), p_updates: ["AAA="] }), "PT404");
    // Direct inserts meet the same rules; only the document and the updates may be given.
    await expectSqlError(as(team.viewer, (c) => c.query("insert into content.doc_updates (document_id, updates) values ($1, $2)", [doc.id, [Buffer.from([0, 0])]])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("insert into content.doc_updates (document_id, updates, revision) values ($1, $2, 99)", [doc.id, [Buffer.from([0, 0])]])), "42501");
    expect(await docRow(doc.id)).toMatchObject({ revision: before.revision, pending_updates: 0 });

    const { rows: [sqlDoc] } = await admin.query(
      "insert into content.documents (org_id, kind, title, body) values ($1, 'note', 'No state yet', $2) returning id",
      [team.orgId, JSON.stringify(note("seed me"))],
    );
    await expectSqlError(contentRpc(team.owner, "push_updates", { p_document_id: sqlDoc.id, p_updates: ["AAA="] }), "PT409", /not live yet/);
    // Opening it seeds it once, from the body; a second open finds it seeded.
    const first = new LiveEditor(team.owner, sqlDoc.id);
    const opened = await first.join();
    expect(opened).toMatchObject({ seeded: true });
    expect(noteText(first.doc)).toBe("seed me");
    const second = new LiveEditor(team.member, sqlDoc.id);
    expect(await second.join()).toMatchObject({ seeded: false });
    expect(noteText(second.doc)).toBe("seed me");
    await Promise.all([first.leave(), second.leave()]);
  });

  it("the log is readable by readers only", async () => {
    const doc = await createDoc(team.owner, team.orgId, { visibility: "private", body: note("x") });
    const w = new LiveEditor(team.owner, doc.id);
    await w.join();
    typeInto(w, 0, "y");
    await w.flush();
    const count = (who: typeof team.owner) => as(who, async (c) => (await c.query("select count(*)::int as n from content.doc_updates where document_id = $1", [doc.id])).rows[0].n);
    expect(await count(team.owner)).toBe(1);
    expect(await count(team.member)).toBe(0);
    await expectSqlError(as(team.owner, (c) => c.query("delete from content.doc_updates where document_id = $1", [doc.id])), "42501");
    await expectSqlError(as(team.owner, (c) => c.query("select * from content.live_states where document_id = $1", [doc.id])), "42501");
    await w.leave();
  });
});
