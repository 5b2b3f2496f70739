"""Run every case of hookd's vectors.json through hookd_verify; exit 1 on any mismatch.

usage: python3 check_vectors.py path/to/vectors.json
"""
import json
import sys

from hookd_verify import VerificationError, verify, verify_standard

doc = json.load(open(sys.argv[1], encoding="utf-8"))
passed = failed = 0
for case in doc["cases"]:
    check = verify if case["scheme"] == "sha256" else verify_standard
    try:
        check(case["secrets"], case["headers"], case["body"].encode(), now=case["now"], tolerance=doc["tolerance_seconds"])
        got = None
    except VerificationError as e:
        got = e.code
    if got == case["error"]:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {case['name']}: got {got}, expected {case['error']}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
