// node-opcua as an independent client of the gateway's data-change subscriptions. PlantGuard
// encodes the notifications of latest-value items itself (numpy, a whole publish at once), so
// an independent decoder must read exactly what asyncua's own encoding would have given:
// the value with its type, the StatusCode, both timestamps, and the client's handles.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { AttributeIds, DataType, StatusCodes, TimestampsToReturn } = require("node-opcua-client");
const { Demo, sleep, until } = require("./gateway");

const demo = new Demo("datachange", { duration: 90 });

before(() => demo.start());
after(() => demo.stop());

test("data-change notifications decoded by node-opcua", { timeout: 90000 }, async () => {
  const session = await demo.connect();
  const ns = (await session.readNamespaceArray()).indexOf("urn:plantguard");
  const points = {
    level: { nodeId: `ns=${ns};s=demo/utilities/tank1/Points/level`, type: DataType.Double },
    current: { nodeId: `ns=${ns};s=demo/utilities/pump1/Points/current`, type: DataType.Double },
    running: { nodeId: `ns=${ns};s=demo/utilities/pump1/Points/running`, type: DataType.Boolean },
  };
  const subscription = await session.createSubscription2({
    requestedPublishingInterval: 100, requestedMaxKeepAliveCount: 20, publishingEnabled: true,
  });
  const received = {};
  for (const [name, point] of Object.entries(points)) {
    received[name] = [];
    const item = await subscription.monitor(
      { nodeId: point.nodeId, attributeId: AttributeIds.Value },
      { samplingInterval: 0, queueSize: 1 },
      TimestampsToReturn.Both,
    );
    item.on("changed", (dataValue) => received[name].push(dataValue));
  }
  // The demo polls every second; wait for a few polls after the first good values.
  const good = (name) => received[name].filter((v) => v.statusCode === StatusCodes.Good);
  await until("four good level values", () => good("level").length >= 4, 60000);
  const start = Date.now();
  for (const [name, point] of Object.entries(points)) {
    assert.ok(good(name).length >= 1, `${name}: a good value`);
    for (const dv of good(name)) {
      assert.equal(dv.value.dataType, point.type, `${name}: data type`);
      assert.ok(dv.sourceTimestamp instanceof Date, `${name}: source timestamp`);
      assert.ok(dv.serverTimestamp instanceof Date, `${name}: server timestamp`);
      assert.ok(Math.abs(dv.serverTimestamp.getTime() - start) < 120000, `${name}: server time now`);
      assert.ok(dv.serverTimestamp.getTime() >= dv.sourceTimestamp.getTime() - 1000);
    }
  }
  const levels = good("level");
  for (let i = 1; i < levels.length; i++) {
    assert.ok(levels[i].sourceTimestamp >= levels[i - 1].sourceTimestamp, "source times in order");
    assert.ok(Number.isFinite(levels[i].value.value));
  }
  // What a Read gives now is what the subscription last sent for a value that did not change
  // since: read until two reads agree, and compare with the last notification by then.
  let settled;
  for (let tries = 0; tries < 20 && !settled; tries++) {
    const read = () => session.read({ nodeId: points.running.nodeId, attributeId: AttributeIds.Value });
    const a = await read();
    await sleep(400);
    const b = await read();
    const sameTime = a.sourceTimestamp?.getTime() === b.sourceTimestamp?.getTime();
    if (a.value.value === b.value.value && sameTime) settled = b;
  }
  assert.ok(settled, "a settled read of pump1.running");
  const last = received.running[received.running.length - 1];
  assert.equal(last.value.value, settled.value.value);
  assert.equal(last.statusCode, settled.statusCode);
  await subscription.terminate();
});
