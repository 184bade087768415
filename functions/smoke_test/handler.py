"""Demo: the pre-traffic hook of thumbnailer's prod deployments (SAM's Hooks.PreTraffic).

Before any traffic moves to the new version, the deployment invokes this function with
CodeDeploy's hook event ({DeploymentId, LifecycleEventHookExecutionId}). It checks what the new
version needs and reports Succeeded or Failed with PutLifecycleEventHookExecutionStatus, as a
hook does in AWS: boto3's codedeploy client reaches the simulator's local CodeDeploy endpoint
through AWS_ENDPOINT_URL_CODEDEPLOY. A hook that raises or times out fails too.
"""

import boto3

codedeploy = boto3.client("codedeploy")
s3 = boto3.client("s3")


def handler(event, context):
    try:
        s3.head_bucket(Bucket="thumbnails")  # the new version writes its thumbnails there
        status = "Succeeded"
    except Exception as exc:  # report the failure: the deployment rolls back
        print(f"smoke test failed: {exc}")
        status = "Failed"
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return {"status": status}
