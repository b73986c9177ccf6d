"""Audio sources (file, microphone, rtsp), each a thread writing into its ring buffer."""
