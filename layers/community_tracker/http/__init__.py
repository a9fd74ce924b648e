"""HTTP adapter shared by both HTTP functions: resolver, error answers, the caller's identity."""
