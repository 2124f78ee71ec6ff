// node-opcua as an independent client of the gateway's data-change subscriptions. PlantGuard
// encodes the notifications of latest-value items itself (numpy, a whole publish at once), so
// an independent decoder must read exactly what asyncua's own encoding would have given:
// the value with its type, the StatusCode, both timestamps, and the client's handles.
// The gateway is the real `plantguard demo` in a subprocess on free ports.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, DataType, StatusCodes,
  TimestampsToReturn,
} = require("node-opcua-client");

const PYTHON = process.env.PLANTGUARD_PYTHON || path.resolve(__dirname, "../../.venv/bin/python");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "plantguard-datachange-"));
let gateway;
let endpoint;
let client;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  const opcuaPort = await freePort();
  const modbusPort = await freePort();
  endpoint = `opc.tcp://127.0.0.1:${opcuaPort}/plantguard`;
  const log = fs.openSync(path.join(tmp, "gateway.log"), "w");
  gateway = spawn(PYTHON, [
    "-m", "plantguard", "demo", "--quiet", "--opcua-port", String(opcuaPort),
    "--modbus-port", String(modbusPort), "--db", path.join(tmp, "demo.db"), "--duration", "90",
  ], { stdio: ["ignore", log, log] });
});

after(async () => {
  if (client) await client.disconnect().catch(() => {});
  if (gateway && gateway.exitCode === null) {
    gateway.kill("SIGTERM");
    await new Promise((r) => gateway.once("exit", r));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("data-change notifications decoded by node-opcua", { timeout: 90000 }, async () => {
  client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    connectionStrategy: { maxRetry: 200, initialDelay: 200, maxDelay: 500 },
  });
  await client.connect(endpoint);
  const session = await client.createSession();
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
  const deadline = Date.now() + 60000;
  while (received.level.filter((v) => v.statusCode === StatusCodes.Good).length < 4) {
    assert.ok(Date.now() < deadline, "level values did not arrive");
    await sleep(200);
  }
  const start = Date.now();
  for (const [name, point] of Object.entries(points)) {
    const good = received[name].filter((v) => v.statusCode === StatusCodes.Good);
    assert.ok(good.length >= 1, `${name}: a good value`);
    for (const dv of good) {
      assert.equal(dv.value.dataType, point.type, `${name}: data type`);
      assert.ok(dv.sourceTimestamp instanceof Date, `${name}: source timestamp`);
      assert.ok(dv.serverTimestamp instanceof Date, `${name}: server timestamp`);
      assert.ok(Math.abs(dv.serverTimestamp.getTime() - start) < 120000, `${name}: server time now`);
      assert.ok(dv.serverTimestamp.getTime() >= dv.sourceTimestamp.getTime() - 1000);
    }
  }
  const levels = received.level.filter((v) => v.statusCode === StatusCodes.Good);
  for (let i = 1; i < levels.length; i++) {
    assert.ok(levels[i].sourceTimestamp >= levels[i - 1].sourceTimestamp, "source times in order");
    assert.ok(Number.isFinite(levels[i].value.value));
  }
  // What a Read gives now is what the subscription last sent for a value that did not change
  // since: read until two reads agree, and compare with the last notification by then.
  let settled;
  for (let tries = 0; tries < 20 && !settled; tries++) {
    const a = await session.read({ nodeId: points.running.nodeId, attributeId: AttributeIds.Value });
    await sleep(400);
    const b = await session.read({ nodeId: points.running.nodeId, attributeId: AttributeIds.Value });
    if (a.value.value === b.value.value && a.sourceTimestamp?.getTime() === b.sourceTimestamp?.getTime()) {
      settled = b;
    }
  }
  assert.ok(settled, "a settled read of pump1.running");
  const last = received.running[received.running.length - 1];
  assert.equal(last.value.value, settled.value.value);
  assert.equal(last.statusCode, settled.statusCode);
  await subscription.terminate();
  await session.close();
});
