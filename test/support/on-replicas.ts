// Imported first by an `on-replicas.test.ts` file: the suite files it imports next run against
// three berth apps on one S3 bucket and one Redis, each request sent to the next of them
// (see testReplicas() and startHostedApp()).
process.env.BERTH_TEST_STORAGE = "replicas";
