module github.com/bulwarkrpc/bulwark/discovery/etcd

go 1.26

require github.com/bulwarkrpc/bulwark v0.0.0

replace github.com/bulwarkrpc/bulwark => ../../
