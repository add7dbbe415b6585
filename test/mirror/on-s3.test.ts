// The mirror suite again, with berth's storage on S3 (Swift's s3api): every test file of test/mirror.
import "../support/on-s3.js";
import "./blob-fills.test.js";
import "./clients.test.js";
import "./corrupt-upstream.test.js";
import "./credentials.test.js";
import "./default-upstream.test.js";
import "./herd.test.js";
import "./offline-and-policies.test.js";
import "./recent-manifests.test.js";
import "./refusals.test.js";
import "./tenant-isolation.test.js";
import "./upstream-faults.test.js";
