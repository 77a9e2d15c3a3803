// bench/peers/bullmq.js fill|work N CONCURRENCY (REDIS_HOST+REDIS_PORT | REDIS_SOCK in the environment):
// BullMQ for the peers benchmark (bench/peers/compare.py). "fill" adds N noop jobs to queue "bench" (addBulk,
// 1000 at a time) and exits; "work" runs one Worker with the given concurrency and a noop processor until
// it is stopped by SIGTERM (the driver times the drain from Redis and stops it by PID).
'use strict';
const { Queue, Worker } = require('bullmq');

const [mode, nArg, cArg] = process.argv.slice(2);
const connection = process.env.REDIS_SOCK
	? { path: process.env.REDIS_SOCK, maxRetriesPerRequest: null }
	: { host: process.env.REDIS_HOST || '127.0.0.1', port: Number(process.env.REDIS_PORT), maxRetriesPerRequest: null };

async function fill(n) {
	const q = new Queue('bench', { connection });
	for (let done = 0; done < n; done += 1000) {
		const batch = [];
		for (let i = done; i < Math.min(n, done + 1000); i++) batch.push({ name: 'noop', data: { i } });
		await q.addBulk(batch);
	}
	await q.close();
}

function work(concurrency) {
	const w = new Worker('bench', async () => {}, { connection, concurrency });
	w.on('error', (e) => console.error('bullmq worker:', e.message));
	process.on('SIGTERM', () => w.close().then(() => process.exit(0), () => process.exit(1)));
}

if (mode === 'fill') {
	fill(Number(nArg)).then(() => process.exit(0), (e) => { console.error('bullmq fill:', e.message); process.exit(1); });
} else if (mode === 'work') {
	work(Number(cArg) || 10);
} else {
	console.error('usage: bullmq.js fill|work N CONCURRENCY');
	process.exit(2);
}
