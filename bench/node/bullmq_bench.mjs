// BullMQ for Node, the peer of `make bench` (bench/bullmq.py runs it; bench/README in
// bench/bullmq.py's docstring). One command per process:
//
//   node bullmq_bench.mjs enqueue <host:port> <queue> <jobs>
//       addBulk <jobs> no-op jobs (chunks of 1,000, BullMQ's default job options); prints
//       {"enqueued": <jobs>}.
//   node bullmq_bench.mjs drain <host:port> <queue> <jobs> <concurrency>
//       one Worker at <concurrency> runs them; prints one JSON line: the window from the first
//       job's start to the last job's end (the same probe as every queue of the bench), the
//       process's CPU over that window and the store's INFO at both ends of it.
//   node bullmq_bench.mjs serve <host:port> <queue> <concurrency>
//       an idle Worker that runs jobs until SIGTERM (pickup latency); prints "ready".
//   node bullmq_bench.mjs pickup <host:port> <queue> <samples> <max_pause_ms>
//       adds one job at a time after a random pause and waits for it; prints the
//       enqueue-to-start latencies (ms, BullMQ's own `timestamp` and `processedOn`).
//
// Jobs are no-ops (`async () => null` plus the probe's counter); removeOnComplete is BullMQ's
// default (completed jobs are kept), as in the measurement of issue 19.
import { Queue, Worker, Job } from 'bullmq';
import { Redis } from 'ioredis';

const CHUNK = 1000;

function connection(addr) {
  const [host, port] = addr.split(':');
  return { host, port: Number(port), maxRetriesPerRequest: null };
}

function parseInfo(text) {
  const out = {};
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

// Commands (INFO commandstats, INFO itself left out), per command [calls, usec], and CPU
// seconds (INFO cpu) of the store: bench/store_stats.py reads the same fields.
async function storeSample(client) {
  const stats = parseInfo(await client.info('commandstats'));
  const cpu = parseInfo(await client.info('cpu'));
  let commands = 0;
  const byCommand = {};
  for (const [name, value] of Object.entries(stats)) {
    if (name === 'cmdstat_info') continue;
    const calls = /calls=(\d+)/.exec(value);
    const usec = /usec=(\d+)/.exec(value);
    if (!calls || !usec) continue;
    commands += Number(calls[1]);
    byCommand[name.replace(/^cmdstat_/, '')] = [Number(calls[1]), Number(usec[1])];
  }
  return {
    commands,
    cpu_s: Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user),
    by_command: byCommand,
  };
}

function wallSeconds() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

async function enqueue(addr, name, jobs) {
  const queue = new Queue(name, { connection: connection(addr) });
  for (let done = 0; done < jobs; done += CHUNK) {
    const size = Math.min(CHUNK, jobs - done);
    await queue.addBulk(Array.from({ length: size }, () => ({ name: 'noop', data: {} })));
  }
  await queue.close();
  return { enqueued: jobs };
}

async function drain(addr, name, jobs, concurrency) {
  const store = new Redis(connection(addr));
  const probe = { count: 0, first: 0, last: 0, cpuFirst: 0, cpuLast: 0, before: null, after: null };
  let finished;
  const allDone = new Promise((resolve) => {
    finished = resolve;
  });
  let completed = 0;
  const started = wallSeconds();
  const worker = new Worker(
    name,
    async () => {
      probe.count += 1;
      if (probe.count === 1) {
        probe.first = wallSeconds();
        probe.cpuFirst = cpuSeconds();
        probe.before = await storeSample(store);
      }
      probe.last = wallSeconds();
      if (probe.count === jobs) {
        probe.cpuLast = cpuSeconds();
        probe.after = await storeSample(store);
      }
      return null;
    },
    { connection: connection(addr), concurrency },
  );
  worker.on('completed', () => {
    completed += 1;
    if (completed >= jobs) finished();
  });
  worker.on('failed', (job, err) => {
    process.stderr.write(`job ${job && job.id} failed: ${err}\n`);
    completed += 1;
    if (completed >= jobs) finished();
  });
  await allDone;
  await worker.close();
  await store.quit();
  return {
    jobs: probe.count,
    first: probe.first,
    last: probe.last,
    cpu_s: probe.cpuLast - probe.cpuFirst,
    startup_s: probe.first - started,
    store_before: probe.before,
    store_after: probe.after,
    concurrency,
  };
}

async function serve(addr, name, concurrency) {
  const worker = new Worker(name, async () => null, { connection: connection(addr), concurrency });
  await worker.waitUntilReady();
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.on('SIGTERM', resolve));
  await worker.close();
}

async function pickup(addr, name, samples, maxPauseMs) {
  const queue = new Queue(name, { connection: connection(addr) });
  const latencies = [];
  for (let i = 0; i < samples; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * maxPauseMs));
    const added = await queue.add('noop', {});
    const deadline = Date.now() + 5000;
    for (;;) {
      const job = await Job.fromId(queue, added.id);
      if (job && job.finishedOn) {
        latencies.push(job.processedOn - job.timestamp);
        break;
      }
      if (Date.now() > deadline) throw new Error(`job ${added.id} did not finish within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
  await queue.close();
  return { latencies_ms: latencies };
}

const [command, addr, name, ...rest] = process.argv.slice(2);
const numbers = rest.map(Number);
if (command === 'enqueue') {
  process.stdout.write(`${JSON.stringify(await enqueue(addr, name, numbers[0]))}\n`);
} else if (command === 'drain') {
  process.stdout.write(`${JSON.stringify(await drain(addr, name, numbers[0], numbers[1]))}\n`);
} else if (command === 'serve') {
  await serve(addr, name, numbers[0]);
} else if (command === 'pickup') {
  process.stdout.write(`${JSON.stringify(await pickup(addr, name, numbers[0], numbers[1]))}\n`);
} else {
  process.stderr.write('usage: node bullmq_bench.mjs enqueue|drain|serve|pickup ...\n');
  process.exit(2);
}
