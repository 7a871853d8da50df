// The VMM library; components live in their own files.
