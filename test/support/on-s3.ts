// Imported first by an `on-s3.test.ts` file: the suite files it imports next run with berth on
// S3 (Swift's s3api) instead of the filesystem (see testStorageDriver()).
process.env.BERTH_TEST_STORAGE = "s3";
