"""Stage 2, data: Fashion-MNIST found and verified (`fashion_mnist`) and the one shared
split every run of both frameworks trains on (`split`). Imports only `compare.spec`."""
