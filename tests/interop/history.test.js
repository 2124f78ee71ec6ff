// node-opcua as an independent client of the gateway's Historical Access: raw history of a
// point (readHistoryValue, and historyRead paged by continuation points) and an aggregate
// (readAggregateValue), checked against what the store holds. The history is written into
// the database before `plantguard demo` starts on it; the store's own read of it (a Python
// one-off printing Store.trend as JSON) is the expected answer.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const {
  AggregateFunction, StatusCodes,
  TimestampsToReturn, HistoryReadRequest, ReadRawModifiedDetails,
} = require("node-opcua-client");
const { Demo, PYTHON } = require("./gateway");

const demo = new Demo("history", { duration: 120, args: ["--scenario", "none"] });
// Two hours ago on a whole second: inside the demo's retention, before anything it records.
const T0 = Math.floor(Date.now() / 1000) - 7200;
const N = 360;
const STEP = 0.5;

// Writes N samples of tank1.level (every 50th Bad) and prints the store's trend of them.
const SEED = `
import json, sys
import numpy as np
from plantguard.model import Point
from plantguard.store import Store

store = Store(sys.argv[1])
t0, n, step = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
key = store.register_points([Point(id="tank1.level", device_id="tank1")])["tank1.level"]
i = np.arange(n)
quality = np.where(i % 50 == 7, 130, 0).astype(np.uint8)  # 130: BAD_COMMUNICATION_ERROR
value = np.round(40.0 + 5.0 * np.sin(i / 9.0), 3)
value[quality >= 128] = np.nan
store.write_history(np.full(n, key), t0 + step * i, value, quality)
trend = store.trend("tank1.level", t0, t0 + step * n)
print(json.dumps({
    "time": trend.time.tolist(),
    "value": [None if v != v else v for v in trend.value.tolist()],
    "quality": trend.quality.tolist(),
}))
store.close()
`;

let stored;

const at = (seconds) => new Date(seconds * 1000);

// What each stored sample must read as: its time, no value if Bad, the status by name.
function expected() {
  return stored.time.map((t, k) => ({
    time: t * 1000,
    value: stored.quality[k] >= 128 ? null : stored.value[k],
    status: stored.quality[k] >= 128 ? "BadCommunicationError" : "Good",
  }));
}

function seen(dataValues) {
  return dataValues.map((dv) => ({
    time: dv.sourceTimestamp.getTime(),
    value: dv.value.value,
    status: dv.statusCode.name,
  }));
}

before(async () => {
  stored = JSON.parse(execFileSync(PYTHON, ["-c", SEED, demo.db, String(T0), String(N), String(STEP)]));
  await demo.start();
});

after(() => demo.stop());

test("historical access with node-opcua", { timeout: 90000 }, async () => {
  const session = await demo.connect(); // anonymous: the demo lets anyone read history
  const ns = (await session.readNamespaceArray()).indexOf("urn:plantguard");
  assert.ok(ns > 0, "namespace urn:plantguard");
  const level = `ns=${ns};s=demo/utilities/tank1/Points/level`;
  const end = T0 + STEP * N;

  // readHistoryValue (raw, no bounds): every stored sample, values, statuses and times.
  const raw = await session.readHistoryValue(level, at(T0), at(end), { returnBounds: false });
  assert.equal(raw.statusCode.name, "Good");
  assert.deepEqual(seen(raw.historyData.dataValues), expected());

  // historyRead in pages of 64 with continuation points: the same samples, each once.
  const paged = [];
  let continuationPoint = null;
  let pages = 0;
  do {
    const response = await session.historyRead(new HistoryReadRequest({
      historyReadDetails: new ReadRawModifiedDetails({
        startTime: at(T0), endTime: at(end), numValuesPerNode: 64, returnBounds: false,
        isReadModified: false,
      }),
      nodesToRead: [{ nodeId: level, continuationPoint }],
      releaseContinuationPoints: false,
      timestampsToReturn: TimestampsToReturn.Source,
    }));
    const [result] = response.results;
    assert.equal(result.statusCode.name, "Good");
    paged.push(...result.historyData.dataValues);
    continuationPoint = result.continuationPoint;
    pages += 1;
  } while (continuationPoint && continuationPoint.length);
  assert.equal(pages, Math.ceil(N / 64));
  assert.deepEqual(seen(paged), expected());

  // readAggregateValue Average over 60 s intervals: the mean of each interval's Good values.
  const average = await session.readAggregateValue(
    { nodeId: level }, at(T0), at(end), AggregateFunction.Average, 60000,
  );
  assert.equal(average.statusCode.name, "Good");
  const intervals = average.historyData.dataValues;
  assert.equal(intervals.length, (STEP * N) / 60);
  intervals.forEach((dv, k) => {
    const lo = T0 + 60 * k;
    const good = stored.time
      .map((t, i) => [t, stored.value[i], stored.quality[i]])
      .filter(([t, , q]) => t >= lo && t < lo + 60 && q === 0);
    const mean = good.reduce((sum, [, v]) => sum + v, 0) / good.length;
    assert.equal(dv.sourceTimestamp.getTime(), lo * 1000);
    assert.ok(Math.abs(dv.value.value - mean) < 1e-9, `interval ${k}: ${dv.value.value} vs ${mean}`);
    assert.equal(dv.statusCode.isBad(), false); // Good, or Uncertain where Bad samples were skipped
  });
  assert.equal(StatusCodes.Good.value, 0);
});
