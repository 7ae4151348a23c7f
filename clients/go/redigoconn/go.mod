module seen-worker/clients/go/redigoconn

go 1.19

require (
	github.com/gomodule/redigo v1.8.3
	seen-worker/clients/go v0.0.0
)

replace seen-worker/clients/go => ../
