// The MongoDB stand-in for the tests and benchmarks (TESTING.md, docs/testing-mongodb.md):
// CongoDB from @push.rocks/smartmongo 2.2.0 on 127.0.0.1, with its hello handler patched at
// run time to behave like mongod's, so pooled drivers do not spin on their monitor.
//
//   node congo.mjs --modules DIR --port PORT [--host 127.0.0.1] [--persist FILE] [--hello original]
//                  [--fast-paths on]
//
// DIR is the node_modules folder mongo_server.sh installed. Prints "ready port=PORT" once it
// listens. With --persist the data is kept in memory, written to FILE on SIGTERM/SIGINT and
// read back at start: a stop + start keeps the data, a SIGKILL loses it. `--hello original`
// leaves CongoDB's hello handler as it ships (to measure what the patch saves). `--fast-paths on`
// (benchmarks only, never the tests) answers writes by _id and equality deletes through
// indexes instead of a scan of the collection (fast_paths.mjs).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, modules: '', persist: '', hello: 'mongod', 'fast-paths': 'off' };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) {
      console.error(`congo: unknown or incomplete option ${argv[i]}`);
      process.exit(2);
    }
    opts[key] = argv[++i];
  }
  opts.port = Number(opts.port);
  if (!opts.modules || !Number.isInteger(opts.port) || opts.port <= 0 ||
      !['mongod', 'original'].includes(opts.hello) || !['on', 'off'].includes(opts['fast-paths'])) {
    console.error('congo: usage: node congo.mjs --modules DIR --port PORT [--host H] [--persist FILE] [--hello mongod|original] [--fast-paths on|off]');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const dist = join(opts.modules, '@push.rocks/smartmongo/dist_ts/congodb');
const load = (rel) => import(pathToFileURL(join(dist, rel)).href);
// index.js, not the package root: the root imports mongodb-memory-server, which is not installed.
const congo = await load('index.js');
const { HelloHandler } = await load('server/handlers/HelloHandler.js');
if (opts['fast-paths'] === 'on') {
  const { installFastPaths } = await import('./fast_paths.mjs');
  installFastPaths({
    ObjectId: congo.ObjectId,
    UpdateEngine: congo.UpdateEngine,
    QueryEngine: congo.QueryEngine,
    MemoryStorageAdapter: congo.MemoryStorageAdapter,
    UpdateHandler: (await load('server/handlers/UpdateHandler.js')).UpdateHandler,
    DeleteHandler: (await load('server/handlers/DeleteHandler.js')).DeleteHandler,
  });
  console.log('fast paths on: writes by _id and equality deletes use indexes (benchmarks only)');
}

// mongod keeps one topologyVersion.processId for its lifetime and holds an awaitable hello
// (one carrying topologyVersion and maxAwaitTimeMS) until the topology changes or
// maxAwaitTimeMS passes. CongoDB answers at once with a new processId each time, so every
// driver monitor re-sends immediately and both processes burn a core. Nothing ever changes
// here, so an awaitable hello is always answered after maxAwaitTimeMS.
const processId = new congo.ObjectId();
const originalHello = HelloHandler.prototype.handle;
if (opts.hello === 'mongod') HelloHandler.prototype.handle = async function (context) {
  const command = context.command;
  const awaitable = command.topologyVersion != null && command.maxAwaitTimeMS != null;
  if (awaitable) {
    const ms = Math.min(Math.max(Number(command.maxAwaitTimeMS) || 0, 0), 600000);
    await new Promise((resolve) => setTimeout(resolve, ms).unref());
  }
  const response = await originalHello.call(this, context);
  response.topologyVersion = { processId, counter: congo.Long.fromNumber(0) };
  return response;
};

const server = new congo.CongoServer({
  host: opts.host,
  port: opts.port,
  storage: 'memory',
  persistPath: opts.persist || undefined,
  // 0: written only when stopped (a periodic dump of everything would cost CPU in benchmarks).
  persistIntervalMs: 0,
});
await server.start();
console.log(`ready port=${opts.port}`);

// Not CongoServer.stop(): it persists before it stops listening and then waits for every
// connection to end, while the drivers it just disconnected reconnect at once (and a held
// hello keeps a connection open for 10 s), so a stop could hang until SIGKILL lost the data.
// Here: stop listening, drop the connections, write the data, exit.
let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  const t0 = Date.now();
  console.log(`stopping on ${signal}`);
  try {
    server.server?.close();
    for (const conn of server.connections.values()) conn.socket.destroy();
    server.connections.clear();
    await server.getStorage().close();
    console.log(`stopped in ${Date.now() - t0} ms${opts.persist ? `, data written to ${opts.persist}` : ''}`);
  } catch (err) {
    console.error(`congo: stopping on ${signal}: ${err.message}`);
    process.exit(1);
  }
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
