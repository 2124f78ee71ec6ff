// What every interop test needs: the real `plantguard demo` on free ports in a subprocess,
// and node-opcua clients connected to it (retrying while the gateway starts).
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { OPCUAClient, MessageSecurityMode, SecurityPolicy } = require("node-opcua-client");

const PYTHON = process.env.PLANTGUARD_PYTHON || path.resolve(__dirname, "../../.venv/bin/python");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function until(what, predicate, timeoutMs = 45000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

// A demo gateway: `start()` spawns it with its database in a fresh temporary folder,
// `connect(identity)` opens a session, `stop()` closes every client and the gateway.
class Demo {
  constructor(name, { duration = 150, args = [] } = {}) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `plantguard-${name}-`));
    this.db = path.join(this.tmp, `${name}.db`);
    this.duration = duration;
    this.args = args;
    this.clients = [];
  }

  async start() {
    const opcuaPort = await freePort();
    const modbusPort = await freePort();
    this.endpoint = `opc.tcp://127.0.0.1:${opcuaPort}/plantguard`;
    const log = fs.openSync(path.join(this.tmp, "gateway.log"), "w");
    this.process = spawn(PYTHON, [
      "-m", "plantguard", "demo", "--quiet", "--opcua-port", String(opcuaPort),
      "--modbus-port", String(modbusPort), "--db", this.db, "--duration", String(this.duration),
      ...this.args,
    ], { stdio: ["ignore", log, log] });
  }

  async connect(identity) {
    const client = OPCUAClient.create({
      endpointMustExist: false,
      securityMode: MessageSecurityMode.None,
      securityPolicy: SecurityPolicy.None,
      connectionStrategy: { maxRetry: 1, initialDelay: 200, maxDelay: 500 },
    });
    await until(`the gateway at ${this.endpoint}`, async () => {
      try {
        await client.connect(this.endpoint);
        return true;
      } catch {
        return false;
      }
    });
    this.clients.push(client);
    return client.createSession(identity);
  }

  async stop() {
    for (const client of this.clients) {
      await client.disconnect().catch(() => {});
    }
    if (this.process && this.process.exitCode === null) {
      this.process.kill("SIGTERM");
      await new Promise((r) => this.process.once("exit", r));
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

module.exports = { Demo, PYTHON, sleep, until };
