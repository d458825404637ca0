module ferry/benchmarks/go-netrpc

go 1.19
