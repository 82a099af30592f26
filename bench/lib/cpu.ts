/**
 * CPU time of processes as the kernel counts it: utime + stime from
 * `/proc/PID/stat` (every thread of the process: libuv's pool, libzmq's I/O
 * threads), so that a figure can be split by process. Linux only; elsewhere
 * every reading is NaN.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let ticksPerSecond: number | undefined

/** The kernel's clock ticks per second (`getconf CLK_TCK`; 100 when that cannot be asked). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** utime + stime of process `pid` so far, in ms (resolution 1/CLK_TCK, 10 ms); NaN when it cannot be read. */
export function processCpuMs(pid: number): number {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return NaN
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // After the name, field 3 (state) is index 0: utime (field 14) and stime (15) are 11 and 12.
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1000) / clockTicks()
}

/** CPU time of named processes over a window: {@link CpuWindow.stop} gives each one's ms since the start. */
export class CpuWindow {
  readonly #pids: ReadonlyMap<string, number>
  readonly #start: Map<string, number>

  /** Reads each process's CPU time now; `pids` maps a label to a pid. */
  constructor(pids: Readonly<Record<string, number | undefined>>) {
    this.#pids = new Map(Object.entries(pids).filter((e): e is [string, number] => e[1] !== undefined))
    this.#start = new Map([...this.#pids].map(([label, pid]) => [label, processCpuMs(pid)]))
  }

  /** CPU ms used by each process since the window opened (NaN for one that could not be read). */
  stop(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [label, pid] of this.#pids) out[label] = processCpuMs(pid) - (this.#start.get(label) ?? NaN)
    return out
  }
}
