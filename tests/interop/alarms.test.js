// node-opcua as an independent client of the PlantGuard gateway: browse, A&C events on the
// Server object, ConditionRefresh, Acknowledge / Confirm as `operator`, TimedShelve as
// `engineer`, a `viewer` refused, and node-opcua's own alarm list (installAlarmMonitoring).
// The gateway is the real `plantguard demo` in a subprocess on free ports (./gateway.js).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const {
  UserTokenType, AttributeIds, DataType,
  StatusCodes, constructEventFilter, ofType, resolveNodeId, callConditionRefresh,
  acknowledgeCondition, confirmCondition, installAlarmMonitoring, uninstallAlarmMonitoring,
  TimestampsToReturn, BrowseDirection,
} = require("node-opcua-client");
const { Demo, PYTHON, until } = require("./gateway");

const FIELDS = [
  "EventId", "EventType", "SourceNode", "SourceName", "Time", "Message", "Severity",
  "ConditionId", "ConditionName", "BranchId", "Retain", "ActiveState.Id", "AckedState.Id",
  "ConfirmedState.Id", "EnabledState.Id", "Comment", "ClientUserId", "ShelvingState.CurrentState.Id",
];
const demo = new Demo("interop");

async function connect(user) {
  const identity = user ? { type: UserTokenType.UserName, userName: user, password: user } : undefined;
  return demo.connect(identity);
}

function journal() {
  const out = execFileSync(PYTHON, ["-m", "plantguard", "alarms", "journal", "--db", demo.db, "--json"]);
  return JSON.parse(out.toString());
}

function eventsOf(fieldsArrays) {
  // eventFields (Variant[]) → { name: value }
  return fieldsArrays.map((f) => Object.fromEntries(FIELDS.map((name, i) => [name, f[i].value])));
}

before(() => demo.start());
after(() => demo.stop());

test("alarms and conditions with node-opcua", { timeout: 120000 }, async () => {
  const operator = await connect("operator");
  const ns = (await operator.readNamespaceArray()).indexOf("urn:plantguard");
  assert.ok(ns > 0, "namespace urn:plantguard");

  // Browse: the tank's Alarms folder holds its condition, of type ExclusiveLimitAlarmType.
  const tank = `ns=${ns};s=demo/utilities/tank1`;
  const folder = await operator.browse(`${tank}/Alarms`);
  const names = folder.references.map((r) => r.browseName.name);
  assert.ok(names.includes("level.limit"), `conditions: ${names}`);
  const conditionId = resolveNodeId(`${tank}/Alarms/level.limit`);
  const typeRef = (await operator.browse({
    nodeId: conditionId, referenceTypeId: "HasTypeDefinition", browseDirection: BrowseDirection.Forward,
  })).references[0];
  assert.equal(typeRef.nodeId.toString(), resolveNodeId("ExclusiveLimitAlarmType").toString());

  // Subscribe to events on the Server object with an A&C field filter.
  const subscription = await operator.createSubscription2({
    requestedPublishingInterval: 100, requestedMaxKeepAliveCount: 20, publishingEnabled: true,
  });
  const received = [];
  const item = await subscription.monitor(
    { nodeId: resolveNodeId("Server"), attributeId: AttributeIds.EventNotifier },
    { samplingInterval: 0, queueSize: 1000, filter: constructEventFilter(FIELDS, ofType("AlarmConditionType")) },
    TimestampsToReturn.Both,
  );
  item.on("changed", (fields) => received.push(fields));
  const isLevel = (e) => e.ConditionName === "level.limit";
  const active = await until("the scenario's level alarm", () =>
    eventsOf(received).reverse().find((e) => isLevel(e) && e["ActiveState.Id"]));
  assert.equal(active.ConditionId.toString(), conditionId.toString());
  assert.equal(active.SourceName, "tank1.level");
  assert.equal(active.EventType.toString(), resolveNodeId("ExclusiveLimitAlarmType").toString());
  assert.equal(active["AckedState.Id"], false);
  assert.equal(active.Retain, true);

  // ConditionRefresh replays the retained condition.
  received.length = 0;
  await callConditionRefresh(operator, subscription.subscriptionId);
  const refreshed = await until("the refreshed condition", () => eventsOf(received).find(isLevel));

  // A viewer may not acknowledge.
  const viewer = await connect("viewer");
  const refused = await acknowledgeCondition(viewer, conditionId, refreshed.EventId, "not allowed");
  assert.equal(refused.name, "BadUserAccessDenied");

  // The operator acknowledges with a comment, then confirms.
  const ack = await acknowledgeCondition(operator, conditionId, refreshed.EventId, "seen from node-opcua");
  assert.equal(ack.name, "Good");
  const acked = await until("the acknowledged event", () =>
    eventsOf(received).find((e) => isLevel(e) && e["AckedState.Id"]));
  assert.equal(acked.ClientUserId, "operator");
  assert.equal(acked.Comment.text, "seen from node-opcua");
  const again = await acknowledgeCondition(operator, conditionId, acked.EventId, "twice");
  assert.equal(again.name, "BadConditionBranchAlreadyAcked");
  const confirmed = await confirmCondition(operator, conditionId, acked.EventId, "confirmed");
  assert.equal(confirmed.name, "Good");

  // The engineer shelves it for a minute (TimedShelve on the ShelvingState object).
  const engineer = await connect("engineer");
  const shelve = await engineer.call({
    objectId: resolveNodeId(`${tank}/Alarms/level.limit.ShelvingState`),
    methodId: resolveNodeId("i=2949"), // ShelvedStateMachineType.TimedShelve
    inputArguments: [{ dataType: DataType.Double, value: 60000 }],
  });
  assert.equal(shelve.statusCode.name, "Good");
  const shelved = await until("the shelved event", () =>
    eventsOf(received).find((e) => isLevel(e) && e.ClientUserId === "engineer"));
  assert.equal(shelved["ShelvingState.CurrentState.Id"].value,
    2932); // ShelvedStateMachineType.TimedShelved

  // node-opcua's own alarm list (subtype filter OfType(AcknowledgeableConditionType) + refresh).
  const alarmList = await installAlarmMonitoring(operator);
  const listed = await until("node-opcua's alarm list", () =>
    alarmList.alarms().find((a) => a.conditionId.toString() === conditionId.toString()));
  assert.ok(listed.getRetain());
  await uninstallAlarmMonitoring(operator);

  // The journal has who acted, and why.
  const entries = journal().filter((e) => e.alarm === "tank1.level.limit");
  const ackEntry = entries.find((e) => e.action === "acknowledge");
  assert.equal(ackEntry.user, "operator");
  assert.equal(ackEntry.comment, "seen from node-opcua");
  assert.ok(entries.find((e) => e.action === "confirm" && e.user === "operator"));
  assert.ok(entries.find((e) => e.action === "shelve" && e.user === "engineer"));
  assert.equal(StatusCodes.Good.value, 0);
});
