// The partition of a workspace, as hookd computes it (docs/producers/README.md).
// Copy Partition and Stream into your producer. (Not run by hookd's tests:
// there is no Go toolchain on the machines they run on; the function is the
// same few lines as the Python and Node ones, which are.)
package producer

import (
	"fmt"
	"hash/fnv"
)

// Partition is FNV-1a (32-bit) of the workspace id's bytes, modulo the count.
func Partition(workspace string, partitions uint32) uint32 {
	h := fnv.New32a()
	h.Write([]byte(workspace))
	return h.Sum32() % partitions
}

// Stream is the stream to XADD to: the base name itself with one partition.
func Stream(base, workspace string, partitions uint32) string {
	if partitions == 1 {
		return base
	}
	return fmt.Sprintf("%s:p%d", base, Partition(workspace, partitions))
}
