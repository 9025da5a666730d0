// A tokenrelay job read with @durable-streams/client: follow the generation live, stop part
// way, resume from the saved offset, and end with exactly the job's text. A retried attempt
// (a reset) makes the saved offset answer 410: the reader then reads again from -1
// (docs/durable-streams.md, "A reset is retention").
import { FetchError, stream } from "@durable-streams/client"
import { describe, expect, test } from "vitest"

const baseUrl = process.env.DS_BASE_URL
if (!baseUrl) {
  throw new Error("DS_BASE_URL is required (test_conformance.py sets it)")
}

type Live = "sse" | "long-poll"

interface Submitted {
  id: string
  viewer_token: string
}

async function submit(prompt: string): Promise<Submitted> {
  const response = await fetch(`${baseUrl}/v1/jobs`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt }),
  })
  expect(response.status).toBe(202)
  return (await response.json()) as Submitted
}

async function finalOutput(job: Submitted): Promise<string> {
  for (;;) {
    const response = await fetch(`${baseUrl}/v1/jobs/${job.id}?token=${job.viewer_token}`)
    const record = (await response.json()) as { status: string; output: string }
    if (["done", "failed", "cancelled"].includes(record.status)) {
      expect(record.status).toBe("done")
      return record.output
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function reader(job: Submitted, live: Live) {
  const url = `${baseUrl}/v1/stream/jobs/${job.id}`
  const params = { token: job.viewer_token }

  /** Follow from `offset` until some text arrived; the text and the offset after it. */
  async function firstText(offset: string): Promise<{ text: string; offset: string }> {
    const response = await stream({ url, params, offset, live })
    let text = ""
    let after = offset
    await new Promise<void>((resolve, reject) => {
      const unsubscribe = response.subscribeText(async (chunk) => {
        text += chunk.text
        after = chunk.offset
        if (text.length > 0 || chunk.streamClosed) {
          unsubscribe()
          response.cancel()
          resolve()
        }
      })
      response.closed.catch(reject)
    })
    return { text, offset: after }
  }

  /** Follow from `offset` to the end of the job (the stream closes). */
  async function rest(offset: string): Promise<string> {
    const response = await stream({ url, params, offset, live })
    let text = ""
    await new Promise<void>((resolve, reject) => {
      response.subscribeText(async (chunk) => {
        text += chunk.text
        if (chunk.streamClosed) resolve()
      })
      // Not `then(resolve)`: the session can end before the subscriber got its last chunk.
      response.closed.catch(reject)
    })
    expect(response.streamClosed).toBe(true)
    return text
  }

  /** Resume after `before` at `offset`; after a 410 (the job restarted), from -1. */
  async function resume(before: string, offset: string): Promise<string> {
    for (let restarts = 0; ; restarts++) {
      try {
        return before + (await rest(offset))
      } catch (error) {
        if (!(error instanceof FetchError) || error.status !== 410 || restarts > 3) throw error
        before = ""
        offset = "-1"
      }
    }
  }

  return { url, params, firstText, resume }
}

for (const live of ["sse", "long-poll"] as const) {
  describe(`a tokenrelay job as a durable stream (${live})`, () => {
    test("a reader follows the generation, stops, and resumes from its offset exactly", async () => {
      const job = await submit("a long python module\n#sim tokens=300")
      const read = reader(job, live)
      const first = await read.firstText("-1")
      expect(first.text.length).toBeGreaterThan(0)
      const text = await read.resume(first.text, first.offset)
      const output = await finalOutput(job)
      expect(text).toBe(output)

      // A catch-up read of the finished job from the start is the whole text, closed.
      const whole = await stream({ url: read.url, params: read.params, offset: "-1", live: false })
      expect(await whole.text()).toBe(output)
      expect(whole.streamClosed).toBe(true)
    }, 30_000)
  })
}

describe("a tokenrelay job that restarts (a reset)", () => {
  test("an offset of the abandoned attempt answers 410, and the reader starts over exactly", async () => {
    const job = await submit("a python module\n#sim tokens=120 rate=100 fail=cut after=40 times=1")
    const read = reader(job, "long-poll")
    const first = await read.firstText("-1")
    const output = await finalOutput(job) // the retried attempt has ended by now
    const gone = await fetch(`${read.url}?token=${job.viewer_token}&offset=${first.offset}`)
    expect(gone.status).toBe(410)
    expect(await read.resume(first.text, first.offset)).toBe(output)
  }, 30_000)
})
