"""The allocator setting that keeps freed memory in the process (pbrl.allocator)."""

import json
import resource
import subprocess
import sys

import pytest

from pbrl.allocator import reuse_freed_memory

# In a fresh process (the heap's history decides when reuse sets in): fill and free a 64 MB torch block again and
# again, counting the minor page faults each fill takes. 64 MB is over glibc's largest automatic mmap threshold
# (32 MB), so by default every fill is a fresh mmap whose pages all fault in. (numpy would ask for huge pages.)
PROBE = """
import json, resource, sys, torch
from pbrl.allocator import reuse_freed_memory
assert reuse_freed_memory()
faults = []
for _ in range(int(sys.argv[1])):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(64 << 20, dtype=torch.uint8)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(json.dumps(faults))
"""


def test_a_freed_large_block_is_served_again_without_faulting_its_pages_in():
    if not reuse_freed_memory():
        pytest.skip("not glibc: the setting does not apply")
    out = subprocess.run([sys.executable, "-c", PROBE, "16"], check=True, capture_output=True, text=True).stdout
    faults = json.loads(out)
    pages = (64 << 20) // resource.getpagesize()
    assert faults[0] >= pages // 2  # the first fill does fault its pages in: the count measures what it should
    assert max(faults[-4:]) < pages // 20, faults  # later fills reuse the heap's pages
