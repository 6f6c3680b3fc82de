// Compaction invariants: running while clients keep sending loses nothing; exactly the merged
// ids are deleted (a batch that commits late with a lower id survives); a failed or empty load,
// or a corrupt state, never shrinks what is stored; malformed batches are dropped, batches
// waiting for what they build on are kept.
import * as Y from "yjs";
import { beforeAll, describe, expect, it } from "vitest";
import { noteText } from "../../functions/_shared/content/kinds/note.ts";
import { dominates, toBase64 } from "../../functions/_shared/content/ydoc.ts";
import { RefusedCompaction } from "../../functions/_shared/content/compaction.ts";
import { admin, as, createTeam, type Team } from "../helpers/db.ts";
import { compact, contentRpc, createDoc, docRow, LiveEditor, note, pendingBatches } from "../helpers/content.ts";

let team: Team;
beforeAll(async () => {
  team = await createTeam("Compaction");
});

async function stored(id: string) {
  const { rows } = await admin.query("select ystate, ystate_sv, epoch from content.live_states where document_id = $1", [id]);
  return rows[0] as { ystate: Buffer; ystate_sv: Buffer; epoch: number };
}

function stateText(state: Uint8Array): string {
  const d = new Y.Doc();
  Y.applyUpdate(d, state);
  return noteText(d);
}

function append(editor: LiveEditor, text: string) {
  const t = (editor.doc.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText;
  t.insert(t.length, text);
}

describe("compaction while clients keep sending", () => {
  it("loses no update: every marker typed by three clients during repeated compactions is in the final state", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("log: ") });
    const editors = [new LiveEditor(team.owner, doc.id, 20), new LiveEditor(team.admin, doc.id, 20), new LiveEditor(team.member, doc.id, 20)];
    for (const e of editors) await e.join();
    let running = true;
    const compactions = (async () => {
      let n = 0;
      while (running) {
        await compact(doc.id).catch((err) => {
          if (!(err instanceof RefusedCompaction)) throw err;
        });
        n++;
      }
      return n;
    })();
    const markers: string[] = [];
    await Promise.all(editors.map(async (e, k) => {
      for (let i = 0; i < 40; i++) {
        const m = `<${k}.${i}>`;
        markers.push(m);
        append(e, m);
        if (i % 4 === 3) await e.flush();
        await new Promise((r) => setTimeout(r, 3));
      }
      await e.flush();
    }));
    running = false;
    expect(await compactions).toBeGreaterThan(3);
    await compact(doc.id);
    expect(editors.flatMap((e) => e.errors)).toEqual([]);
    expect(await pendingBatches(doc.id)).toBe(0);
    const text = stateText((await stored(doc.id)).ystate);
    for (const m of markers) expect(text).toContain(m);
    const body = JSON.stringify((await docRow(doc.id)).body);
    for (const m of markers) expect(body).toContain(m);
    expect((await docRow(doc.id)).pending_updates).toBe(0);
    await Promise.all(editors.map((e) => e.leave()));
  });

  it("deletes exactly the ids it merged: a batch with a lower id that commits after the snapshot stays", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("base ") });
    const { rows: [s0] } = await admin.query("select ystate from content.live_states where document_id = $1", [doc.id]);
    const edit = (text: string, at: number) => {
      const d = new Y.Doc();
      Y.applyUpdate(d, s0.ystate);
      const sv = Y.encodeStateVector(d);
      ((d.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(at, text);
      return toBase64(Y.encodeStateAsUpdate(d, sv));
    };
    const holder = await admin.connect();
    const late = await admin.connect();
    try {
      // Someone holds the document's row; the late batch takes its id, then waits for the row.
      await holder.query("begin");
      await holder.query("select 1 from content.documents where id = $1 for update", [doc.id]);
      await late.query("begin");
      await late.query("select set_config('request.jwt.claims', $1, true), set_config('role', 'authenticated', true)", [
        JSON.stringify({ sub: team.member.id, role: "authenticated", aal: "aal1" }),
      ]);
      const lateInsert = late.query("select * from content.push_updates($1, $2)", [doc.id, [edit("LATE ", 0)]]);
      await new Promise((r) => setTimeout(r, 150));
      // Meanwhile a batch with a higher id commits first.
      const { rows: [early] } = await holder.query("insert into content.doc_updates (document_id, updates) values ($1, $2) returning id",
        [doc.id, [Buffer.from(edit("early ", 5), "base64")]]);
      await holder.query("commit");
      const lateId = Number((await lateInsert).rows[0].update_id);
      expect(lateId).toBeLessThan(Number(early.id));
      // The compactor's snapshot sees the early batch only; it stores after the late one commits.
      let taken!: () => void;
      const snapshotTaken = new Promise<void>((r) => (taken = r));
      const compaction = compact(doc.id, { load: (snap) => (taken(), snap) });
      await snapshotTaken;
      await new Promise((r) => setTimeout(r, 100));
      await late.query("commit");
      expect(await compaction).toMatchObject({ merged: 1, deleted: 1 });
      const { rows } = await admin.query("select id from content.doc_updates where document_id = $1", [doc.id]);
      expect(rows.map((r) => Number(r.id))).toEqual([lateId]);
    } finally {
      holder.release();
      late.release();
    }
    await compact(doc.id);
    expect(await pendingBatches(doc.id)).toBe(0);
    expect(stateText((await stored(doc.id)).ystate)).toBe("LATE base early ");
  });
});

describe("never storing less", () => {
  it("refuses a failed or empty load: the stored state, its epoch and the log are untouched", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("precious words") });
    const w = new LiveEditor(team.owner, doc.id);
    await w.join();
    append(w, " and more");
    await w.flush();
    const before = await stored(doc.id);
    const pending = await pendingBatches(doc.id);
    const empty = Y.encodeStateAsUpdate(new Y.Doc());
    await expect(compact(doc.id, { load: (s) => ({ ...s, ystate: empty }) })).rejects.toThrow(RefusedCompaction);
    // A load that lost the log and the state alike is refused too.
    await expect(compact(doc.id, { load: (s) => ({ ...s, ystate: empty, batches: [] }) })).rejects.toThrow(RefusedCompaction);
    const after = await stored(doc.id);
    expect(after.epoch).toBe(before.epoch);
    expect(Buffer.compare(after.ystate, before.ystate)).toBe(0);
    expect(await pendingBatches(doc.id)).toBe(pending);
    // The real thing then goes through and keeps every word.
    await compact(doc.id);
    expect(stateText((await stored(doc.id)).ystate)).toBe("precious words and more");
    await w.leave();
  });

  it("a corrupt stored state fails the compaction without writing", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    const w = new LiveEditor(team.owner, doc.id);
    await w.join();
    append(w, "y");
    await w.flush();
    const before = await stored(doc.id);
    await expect(compact(doc.id, { load: (s) => ({ ...s, ystate: new Uint8Array([255, 1, 2, 3]) }) })).rejects.toThrow();
    expect((await stored(doc.id)).epoch).toBe(before.epoch);
    expect(await pendingBatches(doc.id)).toBe(1);
    await w.leave();
  });

  it("the stored state vector only ever grows", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("a") });
    const w = new LiveEditor(team.owner, doc.id);
    await w.join();
    let previous = (await stored(doc.id)).ystate_sv;
    for (let i = 0; i < 3; i++) {
      append(w, String(i));
      await w.flush();
      await compact(doc.id);
      const now = (await stored(doc.id)).ystate_sv;
      expect(dominates(now, previous)).toBe(true);
      previous = now;
    }
    await w.leave();
  });
});

describe("batches that cannot be merged", () => {
  it("drops a malformed batch and keeps one that builds on an update not in the log yet", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("ok") });
    await contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: [Buffer.from([7, 7, 7, 7]).toString("base64")] });
    // An edit on top of an edit that never reached the log.
    const { rows: [s] } = await admin.query("select ystate from content.live_states where document_id = $1", [doc.id]);
    const a = new Y.Doc();
    Y.applyUpdate(a, s.ystate);
    ((a.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(2, " lost");
    const b = new Y.Doc();
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    const sv = Y.encodeStateVector(b);
    ((b.getXmlFragment("default").get(0) as Y.XmlElement).get(0) as Y.XmlText).insert(7, "!");
    await contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: [toBase64(Y.encodeStateAsUpdate(b, sv))] });
    const result = await compact(doc.id);
    expect(result).toMatchObject({ merged: 0, invalid: 1 });
    expect(await pendingBatches(doc.id)).toBe(1);
    expect((await compact(doc.id)).skipped).toBe("waiting");
    // Once what it builds on arrives, both go in.
    await contentRpc(team.owner, "push_updates", { p_document_id: doc.id, p_updates: [toBase64(Y.encodeStateAsUpdate(a, new Uint8Array(Y.encodeStateVector(new Y.Doc()))))] });
    await compact(doc.id);
    expect(await pendingBatches(doc.id)).toBe(0);
    expect(stateText((await stored(doc.id)).ystate)).toBe("ok lost!");
    expect((await docRow(doc.id)).body).toEqual(note("ok lost!"));
  });

  it("only the service role stores a compaction", async () => {
    const doc = await createDoc(team.owner, team.orgId, { body: note("x") });
    await expect(as(team.owner, (c) => c.query("select private.content_store_compaction($1, 0, '\\x00', '\\x00', null, '', 1, '{}', '[]')", [doc.id])))
      .rejects.toMatchObject({ code: "42501" });
  });
});
