// Package etcd is bulwark's etcd registry: self-registration under a lease
// and watched instance sets, in a module of its own so that etcd's
// dependency tree stays out of the core module.
package etcd
