"""Is the machine quiet enough to believe a speed comparison? A guard the benchmarks share.

PyTorch's OpenMP threads collapse when another process holds a core (nn.RNN at 32/35/512 fell
from 56K to 2.1K tokens/s with one busy core) while NumPy degrades gracefully, so a comparison
taken on a busy machine flatters minirnn. LoadGuard reads /proc/stat when it is made and when
asked for a verdict: the CPU time used by every process on the machine, less this process's
and its children's, is what others took meanwhile; the hypervisor's steal counts too. Those two
decide whether the ratios may be reported as a verdict. The load average before and after is
reported but not judged: it still counts a benchmark that has just ended.
"""
import os
import resource
import time

# others may use this much of one core, on average over the run, and the hypervisor may steal
# this share of the machine, before the run counts as busy
MAX_OTHER_CORES = 0.05
MAX_STEAL = 0.02


def cpu_seconds():
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat; None elsewhere."""
    try:
        with open('/proc/stat') as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf('SC_CLK_TCK')
    user, nice, system, idle, iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    return (user + nice + system + irq + softirq) / tick, steal / tick


def own_seconds():
    """CPU seconds used by this process and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadGuard:
    """Made before a benchmark starts; verdict() after it ends says whether others ran meanwhile."""

    def __init__(self):
        self.load_before = os.getloadavg()[0]
        self.start, self.cpu, self.own = time.monotonic(), cpu_seconds(), own_seconds()

    def facts(self):
        """What the machine did while the benchmark ran, as a dict (also for JSON reports)."""
        wall = max(time.monotonic() - self.start, 1e-9)
        out = {'load_before': self.load_before, 'load_after': os.getloadavg()[0], 'wall_s': wall}
        now = cpu_seconds()
        if self.cpu is not None and now is not None:
            others = (now[0] - self.cpu[0]) - (own_seconds() - self.own)
            out['other_cores'] = max(others, 0.0) / wall
            out['steal'] = (now[1] - self.cpu[1]) / (wall * (os.cpu_count() or 1))
        return out

    def busy_reasons(self, facts=None):
        facts = facts or self.facts()
        reasons = []
        if facts.get('other_cores', 0) > MAX_OTHER_CORES:
            reasons.append(f'other processes used {facts["other_cores"]:.2f} of a core on average')
        if facts.get('steal', 0) > MAX_STEAL:
            reasons.append(f'the hypervisor stole {100 * facts["steal"]:.1f}% of the CPU time')
        return reasons

    def verdict(self):
        """One paragraph: the machine's figures, and either that the ratios stand or a warning."""
        facts = self.facts()
        line = (f'machine: load average {facts["load_before"]:.2f} before, {facts["load_after"]:.2f} after; '
                + (f'other processes {facts["other_cores"]:.3f} cores, steal {100 * facts["steal"]:.1f}%'
                   if 'other_cores' in facts else 'no /proc/stat, CPU time of others unknown'))
        reasons = self.busy_reasons(facts)
        if reasons:
            return (line + '\nWARNING: the machine was busy (' + '; '.join(reasons) + '): these ratios are '
                    'not a verdict. PyTorch suffers more than minirnn from a busy core; rerun on a quiet machine.')
        return line + '\nquiet machine: the ratios stand.'
