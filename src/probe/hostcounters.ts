/**
 * Host-level context for a stall: how the sending host's kernel-wide TCP counters (`/proc/net/netstat` and
 * `/proc/net/snmp`, what `nstat -az` prints) moved while the probe ran. They count every connection of the host (of
 * its network namespace), not this probe's alone: a rise of PAWS rejections or out-of-window ACKs during a stall
 * says "ACKs arrived that the kernel refused" (incident 2's "ACKs the kernel never accepted"), but only as context,
 * and it is labelled so.
 */

/** The counters read, by `Prefix.Name` as nstat names them (without the prefix's "Ext"), and what each means. */
export const HOST_COUNTERS: Readonly<Record<string, string>> = {
  'TcpExt.PAWSActive': 'SYN-ACKs rejected by PAWS (timestamp older than the last seen)',
  'TcpExt.PAWSEstab': 'segments of established connections rejected by PAWS',
  'TcpExt.BeyondWindow': 'segments beyond the receive window, dropped',
  'TcpExt.TCPACKSkippedSeq': 'out-of-window segments answered with no ACK (rate-limited)',
  'TcpExt.TCPACKSkippedPAWS': 'PAWS-rejected segments answered with no ACK (rate-limited)',
  'TcpExt.TCPACKSkippedChallenge': 'challenge ACKs not sent (rate-limited)',
  'TcpExt.TCPChallengeACK': 'challenge ACKs sent (RFC 5961: a RST or SYN in window, an ACK out of window)',
  'TcpExt.TCPTimeouts': 'retransmission timeouts',
  'TcpExt.TCPZeroWindowDrop': 'segments dropped for a zero receive window',
  'Tcp.InCsumErrors': 'segments with a bad checksum',
  'Tcp.InErrs': 'segments received in error',
  'Tcp.RetransSegs': 'segments retransmitted',
};

/** `/proc/net/netstat` or `/proc/net/snmp` text → `Prefix.Name` → value (pairs of a names line and a values line). Pure. */
export function parseProcNetstat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.split('\n').filter((l) => l.includes(':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [prefix, names] = splitLine(lines[i]!);
    const [prefix2, values] = splitLine(lines[i + 1]!);
    if (prefix !== prefix2) {
      i -= 1; // out of step: resync on the next line
      continue;
    }
    names.forEach((name, j) => {
      const v = Number(values[j]);
      if (Number.isFinite(v)) out[`${prefix}.${name}`] = v;
    });
  }
  return out;
}

function splitLine(line: string): [string, string[]] {
  const c = line.indexOf(':');
  return [line.slice(0, c).trim(), line.slice(c + 1).trim().split(/\s+/)];
}

/** The HOST_COUNTERS that rose between two readings, with how much (unchanged ones left out). Pure. */
export function hostCounterDeltas(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(HOST_COUNTERS)) {
    const a = before[k];
    const b = after[k];
    if (a !== undefined && b !== undefined && b > a) out[k] = b - a;
  }
  return out;
}

/** The host's TCP counters now, or undefined off Linux (or when /proc cannot be read). Never throws. */
export async function readHostCounters(): Promise<Record<string, number> | undefined> {
  if (process.platform !== 'linux') return undefined;
  const { readFile } = await import('node:fs/promises');
  try {
    const [netstat, snmp] = await Promise.all([readFile('/proc/net/netstat', 'utf8'), readFile('/proc/net/snmp', 'utf8')]);
    return { ...parseProcNetstat(snmp), ...parseProcNetstat(netstat) };
  } catch {
    return undefined;
  }
}
