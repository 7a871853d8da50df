// The analyzer library; commands live in their own files.
