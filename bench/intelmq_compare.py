#!/usr/bin/env python3
"""IntelMQ's own Shadowserver parser bot over a report file; prints events per CPU-second.

Needs `pip install intelmq`. The bot runs in-process through IntelMQ's test harness (no
Redis; the same code path as production: parse_line with the schema-driven mapping), fed
with the same schema botwatch ships (copied to IntelMQ's state dir). Usage:
    bench/intelmq_compare.py REPORT.csv
"""
import base64, os, shutil, sys, time, unittest

path = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
try:
    import intelmq.lib.test as test
    from intelmq.bots.parsers.shadowserver import _config
    from intelmq.bots.parsers.shadowserver.parser import ShadowserverParserBot
except Exception as e:  # noqa: BLE001
    print(f"intelmq not importable: {e}")
    sys.exit(2)

# The harness refuses to run as root unless it can drop to an `intelmq` user; a benchmark
# in a throwaway environment has no such user, so skip that check.
import intelmq.lib.utils as _utils
test.utils.drop_privileges = lambda: True
_utils.drop_privileges = lambda: True

os.makedirs(_config.VAR_STATE_PATH, exist_ok=True)
shutil.copy(os.path.join(here, "../crates/feeds/schema/shadowserver/intelmq.json"),
            os.path.join(_config.VAR_STATE_PATH, "shadowserver-schema.json"))

name = os.path.basename(path)
raw = open(path, "rb").read()
result = {}


class Run(test.BotTestCase, unittest.TestCase):
    @classmethod
    def set_bot(cls):
        cls.bot_reference = ShadowserverParserBot
        cls.default_input_message = {"__type": "Report", "raw": base64.b64encode(raw).decode(),
                                     "extra.file_name": name}

    def test_run(self):
        t0 = time.process_time()
        self.run_bot(allowed_warning_count=10**9, allowed_error_count=10**9)
        result["cpu"] = time.process_time() - t0
        result["events"] = len(self.get_output_queue())


suite = unittest.TestLoader().loadTestsFromTestCase(Run)
r = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(suite)
for _, tb in r.errors + r.failures:
    print(tb[-1500:], file=sys.stderr)
if "events" not in result:
    print("intelmq run failed")
    sys.exit(2)
n, cpu = result["events"], result["cpu"]
print(f"intelmq events={n} cpu_s={cpu:.2f} events_per_cpu_s={n / cpu:.0f}")
