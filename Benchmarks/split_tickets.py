#!/usr/bin/env python3
"""Cuts a batch from `micropay gen batch` in two: its first N records (the
tickets, which the generator writes first) and the rest (the payments), so
the payments can be verified against a state where the tickets are already
registered:

    python3 Benchmarks/split_tickets.py day.mpb 1000000 day.tickets.mpb day.payments.mpb
"""
import sys

MAGIC = b"MPB1"


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    source, count, tickets_path, payments_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(source, "rb") as f:
        data = memoryview(f.read())
    if data[:4] != MAGIC:
        sys.exit(f"{source}: not a batch file")
    offset = 4
    for _ in range(count):
        if offset + 2 > len(data):
            sys.exit(f"{source}: fewer than {count} records")
        offset += 2 + (data[offset] << 8 | data[offset + 1])
    with open(tickets_path, "wb") as f:
        f.write(data[:offset])
    with open(payments_path, "wb") as f:
        f.write(MAGIC)
        f.write(data[offset:])


if __name__ == "__main__":
    main()
