// Drives tokenrelay's AI SDK endpoints with the real Vercel AI SDK client (the `ai` package
// pinned in package-lock.json): DefaultChatTransport, readUIMessageStream and the Chat class
// that useChat wraps (AbstractChat, with the state kept in memory instead of React).
//
//   node tests/ai_sdk/driver.mjs <scenario> <baseUrl> '<options as JSON>'
//
// It writes JSON lines to stdout: {"event": "progress", ...} while it runs, then one
// {"event": "result", ...} (or {"event": "failure", ...} and exit code 1). Where a scenario
// waits for the test (the gateway restarted, say), the test writes one line to its stdin.
//
// Scenarios:
//   send       transport.sendMessages, the chunks read to the end through readUIMessageStream;
//              options.progressChars: report once the message has that much text;
//              options.stopAtChars: then POST the stop route, as an app's stop button does
//   reconnect  transport.reconnectToStream({ chatId }): null (204) or the stream read to the end
//   resume     useChat's flow: chat.sendMessage, a disconnect once options.progressChars of
//              text arrived (options.disconnect "client": chat.stop(), which only closes the
//              connection; "server": the test kills the gateway, then writes a line), then
//              chat.resumeStream()

import readline from 'node:readline';
import { AbstractChat, DefaultChatTransport, readUIMessageStream } from 'ai';

const [scenario, baseUrl, rawOptions = '{}'] = process.argv.slice(2);
const options = JSON.parse(rawOptions);
const api = `${baseUrl}/v1/ai-sdk/chat`;

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

const stdinLines = [];
const stdinWaiters = [];
readline.createInterface({ input: process.stdin }).on('line', line => {
  const waiter = stdinWaiters.shift();
  if (waiter) waiter(line);
  else stdinLines.push(line);
});

function nextStdinLine() {
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  return new Promise(resolve => stdinWaiters.push(resolve));
}

// What the HTTP exchanges were: every response's status and headers of interest, and every
// stream's chunks as the transport parsed them (its own parser and schema).
const responses = [];
const streams = [];

async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  responses.push({
    method: init?.method ?? 'GET',
    url: String(url),
    status: response.status,
    jobId: response.headers.get('x-tokenrelay-job-id'),
    protocol: response.headers.get('x-vercel-ai-ui-message-stream'),
    contentType: response.headers.get('content-type'),
  });
  return response;
}

class RecordingTransport extends DefaultChatTransport {
  processResponseStream(stream) {
    const chunks = [];
    streams.push(chunks);
    return super.processResponseStream(stream).pipeThrough(
      new TransformStream({
        transform(chunk, controller) {
          chunks.push(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
  }
}

const transport = new RecordingTransport({
  api,
  headers: options.headers ?? {},
  fetch: recordingFetch,
});

function textOf(message) {
  return (message?.parts ?? [])
    .filter(part => part.type === 'text')
    .map(part => part.text)
    .join('');
}

function userMessage(text) {
  return { id: `user-${Date.now()}`, role: 'user', parts: [{ type: 'text', text }] };
}

async function stopRoute(body) {
  const response = await fetch(`${api}/${encodeURIComponent(options.chatId)}/stop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.headers ?? {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// Reads a chunk stream to its end the way an app without useChat does; reports progress
// and presses "stop" where the options say.
async function readToEnd(stream) {
  const errors = [];
  let message;
  let reported = false;
  let stop;
  for await (const snapshot of readUIMessageStream({
    stream,
    onError: error => errors.push(String(error?.message ?? error)),
  })) {
    message = snapshot;
    const chars = textOf(message).length;
    if (options.progressChars != null && !reported && chars >= options.progressChars) {
      reported = true;
      emit('progress', { chars, messageId: message.id });
    }
    if (options.stopAtChars != null && stop === undefined && chars >= options.stopAtChars) {
      stop = await stopRoute({ activeStreamId: message.id });
    }
  }
  return { message, text: textOf(message), errors, stop };
}

class MemoryState {
  constructor(messages = []) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage = message => {
    this.messages = [...this.messages, this.snapshot(message)];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = this.messages.map((old, i) => (i === index ? this.snapshot(message) : old));
  };
  snapshot = value => structuredClone(value);
}

class NodeChat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new MemoryState(init.messages) });
  }
}

async function until(condition, what, within = 30_000) {
  const deadline = Date.now() + within;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

function chatView(chat) {
  return {
    status: chat.status,
    error: chat.error ? String(chat.error.message ?? chat.error) : null,
    messages: chat.messages.map(message => ({
      id: message.id,
      role: message.role,
      parts: message.parts.map(part =>
        part.type === 'text' ? { type: part.type, text: part.text, state: part.state } : { type: part.type },
      ),
    })),
  };
}

const scenarios = {
  async send() {
    const stream = await transport.sendMessages({
      chatId: options.chatId,
      messages: [userMessage(options.prompt)],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: undefined,
      body: options.body,
    });
    return readToEnd(stream);
  },

  async reconnect() {
    const stream = await transport.reconnectToStream({ chatId: options.chatId });
    if (stream === null) return { stream: null };
    return { stream: 'open', ...(await readToEnd(stream)) };
  },

  async resume() {
    const errors = [];
    const chat = new NodeChat({
      id: options.chatId,
      transport,
      onError: error => errors.push(String(error?.message ?? error)),
    });
    const sending = chat.sendMessage({ text: options.prompt });
    const assistantText = () => {
      const last = chat.lastMessage;
      return last?.role === 'assistant' ? textOf(last) : '';
    };
    await until(() => assistantText().length >= options.progressChars, 'the first text');
    emit('progress', { chars: assistantText().length });
    if (options.disconnect === 'client') {
      await chat.stop(); // in a resumable setup only a disconnect: the job goes on
    }
    await sending;
    const interrupted = chatView(chat);
    emit('interrupted', { chat: interrupted });
    if (options.disconnect === 'server') {
      await nextStdinLine(); // the test restarted the gateway
    }
    await chat.resumeStream();
    return { interrupted, chat: chatView(chat), errors };
  },
};

try {
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  const result = await run();
  emit('result', { ...result, responses, streams });
  process.exit(0);
} catch (error) {
  emit('failure', { message: String(error?.message ?? error), stack: error?.stack, responses, streams });
  process.exit(1);
}
