// The official Durable Streams server conformance suite, run against a tokenrelay gateway.
// The package's own CLI finds no test files inside node_modules, so this local file calls
// runConformanceTests itself; test_conformance.py starts the gateway and sets DS_BASE_URL.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.DS_BASE_URL
if (!baseUrl) {
  throw new Error("DS_BASE_URL is required (test_conformance.py sets it)")
}

runConformanceTests({
  baseUrl,
  longPollTimeoutMs: Number(process.env.DS_LONG_POLL_MS ?? "20000"),
})
