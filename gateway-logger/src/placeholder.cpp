// The gateway library; components live in their own files.
