"""Benchmark of the WhatsApp webhook (bench/run.sh); nothing here is imported by the product."""
