// Placeholder entry point so the solution builds on the kernels branch; the real CLI replaces this file.
return 0;
