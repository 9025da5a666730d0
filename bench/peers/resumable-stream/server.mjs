// A small HTTP server around the `resumable-stream` package (as used by the Vercel AI SDK),
// for tokenrelay's benchmark. The package is imported as published; nothing is copied.
//
//   POST /produce  {"id", "tokens": [...], "rate": tokens/s, "start_in_ms"}
//        starts one producer: a stream of SSE messages {"s": i, "t": ms, "text": token},
//        paced at `rate`, then `event: done`. The producer's own copy is drained here.
//   GET /stream/:id[?skip=N]   a resuming consumer (resumeExistingStream, skipCharacters=N)
//   GET /healthz
//
// Env: REDIS_URL (used by the package's default redis clients), PORT.
import http from "node:http";
import { createResumableStreamContext } from "resumable-stream";

const port = Number(process.env.PORT || 8300);
const context = createResumableStreamContext({ waitUntil: null });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function producerStream(tokens, rate, startInMs) {
  return new ReadableStream({
    async start(controller) {
      await sleep(startInMs);
      const start = Date.now();
      for (let i = 0; i < tokens.length; i++) {
        const due = start + ((i + 1) * 1000) / rate;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        const body = JSON.stringify({ s: i, t: Date.now(), text: tokens[i] });
        controller.enqueue(`data: ${body}\n\n`);
      }
      controller.enqueue("event: done\ndata: {}\n\n");
      controller.close();
    },
  });
}

async function drain(stream) {
  const reader = stream.getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done) return;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (part) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

async function produce(req, res) {
  const { id, tokens, rate, start_in_ms: startInMs = 0 } = JSON.parse(await readBody(req));
  const stream = await context.createNewResumableStream(id, () =>
    producerStream(tokens, rate, startInMs),
  );
  if (stream) drain(stream).catch((err) => console.error("producer", err));
  res.writeHead(202, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ id, created: Boolean(stream) }));
}

async function consume(req, res, id, skip) {
  const stream = await context.resumeExistingStream(id, skip);
  if (!stream) {
    res.writeHead(stream === null ? 204 : 404);
    res.end();
    return;
  }
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    Connection: "keep-alive",
  });
  const reader = stream.getReader();
  req.on("close", () => reader.cancel().catch(() => {}));
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    res.write(value);
  }
  res.end();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  const fail = (err) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  };
  if (req.method === "GET" && url.pathname === "/healthz") {
    res.writeHead(200);
    res.end("ok");
  } else if (req.method === "POST" && url.pathname === "/produce") {
    produce(req, res).catch(fail);
  } else if (req.method === "GET" && url.pathname.startsWith("/stream/")) {
    const skip = url.searchParams.has("skip") ? Number(url.searchParams.get("skip")) : undefined;
    consume(req, res, decodeURIComponent(url.pathname.slice(8)), skip).catch(fail);
  } else {
    res.writeHead(404);
    res.end();
  }
});
server.maxConnections = 20000;
server.listen(port, "127.0.0.1", () => console.log(`resumable-stream peer on ${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
