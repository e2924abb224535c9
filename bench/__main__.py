"""`python -m bench`: run every benchmark and write the table into bench/README.md."""

from bench.run_all import main

main()
