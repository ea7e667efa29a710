// Optional speed-ups for CongoDB, for benchmarks only (congo.mjs --fast-paths on; the tests
// never use them, so they check CongoDB's own query engine). CongoDB answers every update and
// delete by copying the whole collection into an array and testing each document with mingo,
// so a write costs O(documents in the collection): at 20,000 documents the server, not the
// client, is all a benchmark would measure. mongod instead finds an _id through the _id
// index and the documents of an equality filter through a secondary index. Here:
//  - update commands whose every statement selects {_id: <ObjectId>} (the shape of a
//    replace/update by _id) look the document up by _id, then apply CongoDB's own
//    UpdateEngine as its handler does;
//  - delete commands whose every filter is equalities on plain values (dotted paths allowed)
//    and optional _id $in/$nin lists find their candidates through equality indexes built on
//    first use and kept up to date by the storage adapter's mutations, then test them in
//    plain JavaScript.
// Anything else goes to CongoDB's handlers unchanged. Documents whose path crosses an array
// make that path's index unusable (back to CongoDB for filters on it).
const BAIL = Symbol('bail');

export function installFastPaths({ ObjectId, UpdateEngine, QueryEngine, UpdateHandler, DeleteHandler, MemoryStorageAdapter }) {
  // storage -> "db\0coll" -> path -> (Map valueKey -> Set idHex) | null (unusable)
  const all = new WeakMap();
  const collIndexes = (storage, db, coll) => {
    if (!all.has(storage)) all.set(storage, new Map());
    const m = all.get(storage);
    const k = `${db}\0${coll}`;
    if (!m.has(k)) m.set(k, new Map());
    return m.get(k);
  };
  const dropDb = (storage, db, coll) => {
    const m = all.get(storage);
    if (!m) return;
    for (const k of [...m.keys()]) if (k.startsWith(`${db}\0`) && (coll === undefined || k === `${db}\0${coll}`)) m.delete(k);
  };

  const valueKey = (v) => {
    if (typeof v === 'string') return 's' + v;
    if (typeof v === 'number') return 'n' + v;
    if (typeof v === 'boolean') return 'b' + v;
    if (v instanceof ObjectId) return 'o' + v.toHexString();
    return null;
  };
  // The value at a dotted path, undefined when missing, BAIL when an array is in the way.
  const getPath = (doc, parts) => {
    let v = doc;
    for (const p of parts) {
      if (Array.isArray(v)) return BAIL;
      if (v === null || typeof v !== 'object') return undefined;
      v = v[p];
    }
    return Array.isArray(v) ? BAIL : v;
  };

  const indexAdd = (idx, path, doc) => {
    const v = getPath(doc, path.split('.'));
    if (v === BAIL) return false;
    const k = v === undefined ? 'u' : valueKey(v);
    if (k === null) return true; // not an equality we answer: never looked up
    if (!idx.has(k)) idx.set(k, new Set());
    idx.get(k).add(doc._id.toHexString());
    return true;
  };
  const indexRemove = (idx, path, doc) => {
    const v = getPath(doc, path.split('.'));
    const k = v === BAIL ? null : v === undefined ? 'u' : valueKey(v);
    if (k !== null && idx.has(k)) idx.get(k).delete(doc._id.toHexString());
  };
  const onAdd = (storage, db, coll, doc) => {
    const ix = collIndexes(storage, db, coll);
    for (const [path, idx] of ix) if (idx && !indexAdd(idx, path, doc)) ix.set(path, null);
  };
  const onRemove = (storage, db, coll, doc) => {
    for (const [path, idx] of collIndexes(storage, db, coll)) if (idx) indexRemove(idx, path, doc);
  };
  const pathIndex = (storage, db, coll, path) => {
    const ix = collIndexes(storage, db, coll);
    if (!ix.has(path)) {
      let idx = new Map();
      for (const doc of storage.ensureCollection(db, coll).values()) {
        if (!indexAdd(idx, path, doc)) { idx = null; break; }
      }
      ix.set(path, idx);
    }
    return ix.get(path);
  };

  // Keep the indexes in step with every mutation of the storage adapter.
  const proto = MemoryStorageAdapter.prototype;
  const wrap = (name, fn) => { const orig = proto[name]; proto[name] = function (...a) { return fn.call(this, orig, ...a); }; };
  wrap('insertOne', async function (orig, db, coll, doc) {
    const stored = await orig.call(this, db, coll, doc);
    onAdd(this, db, coll, stored);
    return stored;
  });
  wrap('updateById', async function (orig, db, coll, id, doc) {
    const old = this.ensureCollection(db, coll).get(id.toHexString());
    const ok = await orig.call(this, db, coll, id, doc);
    if (ok) { if (old) onRemove(this, db, coll, old); onAdd(this, db, coll, doc); }
    return ok;
  });
  wrap('deleteById', async function (orig, db, coll, id) {
    const old = this.ensureCollection(db, coll).get(id.toHexString());
    const ok = await orig.call(this, db, coll, id);
    if (ok && old) onRemove(this, db, coll, old);
    return ok;
  });
  wrap('deleteByIds', async function (orig, db, coll, ids) {
    const c = this.ensureCollection(db, coll);
    const olds = ids.map((id) => c.get(id.toHexString())).filter(Boolean);
    const n = await orig.call(this, db, coll, ids);
    for (const old of olds) onRemove(this, db, coll, old);
    return n;
  });
  for (const name of ['dropCollection', 'renameCollection', 'restore']) {
    wrap(name, async function (orig, db, coll, ...rest) {
      if (name === 'restore') all.delete(this); else dropDb(this, db, coll);
      if (name === 'renameCollection') dropDb(this, db, rest[0]);
      return orig.call(this, db, coll, ...rest);
    });
  }
  wrap('dropDatabase', async function (orig, db) { dropDb(this, db); return orig.call(this, db); });

  // A filter of equalities and _id $in/$nin, or null.
  const compile = (filter) => {
    const eq = [];
    let idIn = null, idNin = null;
    for (const [key, value] of Object.entries(filter || {})) {
      if (key.startsWith('$')) return null;
      if (value !== null && typeof value === 'object' && !(value instanceof ObjectId)) {
        const ops = Object.keys(value);
        if (key !== '_id' || ops.length !== 1 || !['$in', '$nin'].includes(ops[0]) || !Array.isArray(value[ops[0]])) return null;
        const keys = value[ops[0]].map(valueKey);
        if (keys.some((k) => k === null)) return null;
        if (ops[0] === '$in') idIn = new Set(keys); else idNin = new Set(keys);
        continue;
      }
      const k = valueKey(value);
      if (k === null) return null;
      eq.push({ path: key, parts: key.split('.'), key: k });
    }
    return eq.length ? { eq, idIn, idNin } : null;
  };
  const matches = (doc, f) => {
    for (const { parts, key } of f.eq) {
      const v = getPath(doc, parts);
      if (v === BAIL) return BAIL;
      if (v === undefined || valueKey(v) !== key) return false;
    }
    const id = 'o' + doc._id.toHexString();
    if (f.idIn && !f.idIn.has(id)) return false;
    if (f.idNin && f.idNin.has(id)) return false;
    return true;
  };
  // The documents matching f, or BAIL.
  const lookup = async (storage, db, coll, f) => {
    const c = storage.ensureCollection(db, coll);
    let best = null;
    for (const { path, key } of f.eq) {
      const idx = pathIndex(storage, db, coll, path);
      if (!idx) continue;
      const ids = idx.get(key) || new Set();
      if (!best || ids.size < best.size) best = ids;
    }
    if (!best) return BAIL;
    const out = [];
    for (const hex of best) {
      const doc = c.get(hex);
      if (!doc) continue;
      const m = matches(doc, f);
      if (m === BAIL) return BAIL;
      if (m) out.push(doc);
    }
    return out;
  };

  const origDelete = DeleteHandler.prototype.handle;
  DeleteHandler.prototype.handle = async function (context) {
    const { storage, database, command, documentSequences } = context;
    const deletes = documentSequences?.has('deletes') ? documentSequences.get('deletes') : command.deletes;
    const compiled = Array.isArray(deletes) && typeof command.delete === 'string' ? deletes.map((d) => compile(d.q || d.filter)) : [null];
    if (!(storage instanceof MemoryStorageAdapter) || !compiled.length || compiled.some((c) => !c)) return origDelete.call(this, context);
    if (!(await storage.collectionExists(database, command.delete))) return { ok: 1, n: 0 };
    let n = 0;
    for (let i = 0; i < deletes.length; i++) {
      let docs = await lookup(storage, database, command.delete, compiled[i]);
      if (docs === BAIL) docs = QueryEngine.filter(await storage.findAll(database, command.delete), deletes[i].q || deletes[i].filter);
      if (deletes[i].limit !== 0) docs = docs.slice(0, 1);
      if (docs.length) n += await storage.deleteByIds(database, command.delete, docs.map((d) => d._id));
    }
    return { ok: 1, n };
  };

  const origUpdate = UpdateHandler.prototype.handleUpdate;
  UpdateHandler.prototype.handleUpdate = async function (context) {
    const { storage, database, command, documentSequences } = context;
    const coll = command.update;
    const updates = documentSequences?.has('updates') ? documentSequences.get('updates') : command.updates;
    const byId = (u) => {
      const q = u.q || u.filter || {};
      const keys = Object.keys(q);
      return keys.length === 1 && keys[0] === '_id' && q._id instanceof ObjectId && !u.multi && !u.arrayFilters &&
        (u.u || u.update) && !Array.isArray(u.u || u.update);
    };
    if (!(storage instanceof MemoryStorageAdapter) || !Array.isArray(updates) || !updates.length || !updates.every(byId)) {
      return origUpdate.call(this, context);
    }
    await storage.createCollection(database, coll);
    const ordered = command.ordered !== false;
    const writeErrors = [], upserted = [];
    let matched = 0, modified = 0;
    for (let i = 0; i < updates.length; i++) {
      const spec = updates[i], update = spec.u || spec.update, id = (spec.q || spec.filter)._id;
      try {
        const doc = await storage.findById(database, coll, id);
        if (!doc) {
          if (!spec.upsert) continue;
          const created = UpdateEngine.applyUpdate({ _id: id }, update, undefined);
          if (update.$setOnInsert) Object.assign(created, update.$setOnInsert);
          await storage.insertOne(database, coll, created);
          upserted.push({ index: i, _id: created._id });
        } else {
          matched++;
          const updated = UpdateEngine.applyUpdate(doc, update, undefined);
          if (JSON.stringify(doc) !== JSON.stringify(updated)) {
            await storage.updateById(database, coll, doc._id, updated);
            modified++;
          }
        }
      } catch (error) {
        writeErrors.push({ index: i, code: error.code || 1, errmsg: error.message || 'Update failed' });
        if (ordered) break;
      }
    }
    const response = { ok: 1, n: matched + upserted.length, nModified: modified };
    if (upserted.length) response.upserted = upserted;
    if (writeErrors.length) response.writeErrors = writeErrors;
    return response;
  };
}
