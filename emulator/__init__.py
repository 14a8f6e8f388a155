"""A local endpoint that speaks enough of the Azure Resource Manager, Batch AI and
Azure Files REST protocols for the unmodified Azure SDKs to run against it, and
that really executes Batch AI jobs as local processes."""
