module seen-worker/clients/go

go 1.19
