// A node-opcua load client for bench/opcua_bench.py: subscribes to point values and counts
// the notifications it receives. asyncua's client decodes ~20-25k notifications/s per
// process, below what the gateway sends; node-opcua decodes several times faster, so the
// saturated and fan-out phases measure the server, not the client.
//
// Reads one JSON command on stdin: {endpoint, namespace, ids, publish_ms, queue_size,
// clients}; prints {"ready": true} once every item is subscribed, then, on each line
// "reset" / "report" on stdin, zeroes or prints its counts; "quit" ends it. Its answers
// are the stdout lines that start with "PG " (node-opcua logs to stdout too).
// Run with NODE_PATH pointing at tests/interop/node_modules (make interop installs it).
"use strict";

const readline = require("node:readline");
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, TimestampsToReturn,
  ClientMonitoredItemGroup,
} = require("node-opcua-client");

const answer = (value) => process.stdout.write(`PG ${JSON.stringify(value)}\n`);

async function subscriber(command, index) {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    connectionStrategy: { maxRetry: 3, initialDelay: 200, maxDelay: 1000 },
    requestedSessionTimeout: 600000,
  });
  await client.connect(command.endpoint);
  const session = await client.createSession();
  const ns = (await session.readNamespaceArray()).indexOf(command.namespace);
  const subscription = await session.createSubscription2({
    requestedPublishingInterval: command.publish_ms,
    requestedMaxKeepAliveCount: 20,
    requestedLifetimeCount: 600,
    maxNotificationsPerPublish: 0,
    publishingEnabled: true,
  });
  const counts = new Uint32Array(command.ids.length);
  const state = { counts, total: 0, first: 0, last: 0, client, session };
  for (let first = 0; first < command.ids.length; first += 1000) {
    const ids = command.ids.slice(first, first + 1000);
    const group = ClientMonitoredItemGroup.create(
      subscription,
      ids.map((id) => ({ nodeId: `ns=${ns};s=${id}`, attributeId: AttributeIds.Value })),
      { samplingInterval: 0, queueSize: command.queue_size, discardOldest: true },
      TimestampsToReturn.Both,
    );
    group.on("changed", (item, _value, k) => {
      counts[first + k] += 1;
      state.total += 1;
      const now = Date.now();
      if (!state.first) state.first = now;
      state.last = now;
    });
    await new Promise((resolve) => group.once("initialized", resolve));
  }
  return state;
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin });
  const iterator = lines[Symbol.asyncIterator]();
  const command = JSON.parse((await iterator.next()).value);
  const states = await Promise.all(
    Array.from({ length: command.clients || 1 }, (_, i) => subscriber(command, i)),
  );
  answer({ ready: true });
  for (;;) {
    const { value, done } = await iterator.next();
    if (done || value === "quit") break;
    if (value === "reset") {
      for (const s of states) {
        s.counts.fill(0);
        s.total = 0;
        s.first = s.last = 0;
      }
      answer({ reset: true });
    } else if (value === "report") {
      answer(states.map((s) => ({
        total: s.total,
        min: s.counts.reduce((a, b) => Math.min(a, b), Infinity),
        seconds: s.last > s.first ? (s.last - s.first) / 1000 : 0,
      })));
    }
  }
  for (const s of states) {
    await s.session.close().catch(() => {});
    await s.client.disconnect().catch(() => {});
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
