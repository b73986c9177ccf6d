"""Alert sinks: schema, JSONL journal, ZeroMQ publisher, clips."""
