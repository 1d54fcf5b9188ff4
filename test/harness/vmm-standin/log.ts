// What the stand-in saw, as JSON lines the test reads back: every request and every deviation
// from the published API.
import { appendFileSync } from "node:fs";

export interface StandinEntry {
  request?: { method: string; path: string; body?: unknown };
  violation?: string;
}

export class StandinLog {
  constructor(private readonly path: string | undefined) {}

  write(entry: StandinEntry): void {
    if (this.path !== undefined) appendFileSync(this.path, `${JSON.stringify(entry)}\n`);
    if (entry.violation !== undefined) process.stderr.write(`stand-in: API deviation: ${entry.violation}\n`);
  }
}
