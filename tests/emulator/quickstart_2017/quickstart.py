"""The 2017 Azure Batch AI Python quickstart ("Create a GPU cluster and run a CNTK job"),
on its own SDK: azure-mgmt-batchai 0.2.0 (api-version 2017-09-01-preview),
azure-mgmt-resource 1.2.2, msrestazure 0.4 and azure-storage-file.

Run by tests/emulator/test_quickstart_2017_sdk.py with the python of a separate venv
that holds only those packages. Compared with the published quickstart only the
credentials and the endpoints differ, and they come from the environment:

  AZURE_ARM_ENDPOINT, AZURE_SUBSCRIPTION_ID   base_url and subscription of the clients
  AZURE_ACCESS_TOKEN                          bearer token (instead of a service principal)
  AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY    the storage account of the file share
  AZURE_STORAGE_CONNECTION_STRING             the same, with the emulator's FileEndpoint
  REQUESTS_CA_BUNDLE                          the emulator's CA (read by requests itself)
  QUICKSTART_SAMPLE_DIR, QUICKSTART_DOWNLOAD_DIR
                                              where the sample files are / outputs go

The steps and the SDK calls are the quickstart's: resource group, file share and
directory with the MNIST sample uploaded, a one-node STANDARD_NC6 cluster mounting the
share, wait for an idle node, a CNTK job writing its model to the MODEL output
directory, wait for it to finish, list and download stdout/stderr and the model, then
delete the job, the cluster and the resource group.
"""

import os
import sys
import time

import azure.mgmt.batchai as batchai
import azure.mgmt.batchai.models as models
import azure.mgmt.resource as resource
import requests
from azure.storage.file import FileService
from msrest.authentication import BasicTokenAuthentication

# --- credentials and endpoints (the only part that differs from the quickstart) ---
base_url = os.environ["AZURE_ARM_ENDPOINT"]
subscription_id = os.environ["AZURE_SUBSCRIPTION_ID"]
credentials = BasicTokenAuthentication({"access_token": os.environ["AZURE_ACCESS_TOKEN"]})
storage_account_name = os.environ["AZURE_STORAGE_ACCOUNT"]
storage_account_key = os.environ["AZURE_STORAGE_KEY"]
storage_connection_string = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
sample_dir = os.environ["QUICKSTART_SAMPLE_DIR"]
download_dir = os.environ["QUICKSTART_DOWNLOAD_DIR"]

# credentials used to remote login to the GPU node
admin_user_name = "demoUser"
admin_user_password = "Demo-Passw0rd"

POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 120


def log(message):
    print(message, flush=True)


def wait(describe, done):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        value = describe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            sys.exit("timed out waiting")
        time.sleep(POLL_SECONDS)


batchai_client = batchai.BatchAIManagementClient(
    credentials=credentials, subscription_id=subscription_id, base_url=base_url
)

# --- resource group ---
resource_group_name = "myresourcegroup"
resource_management_client = resource.ResourceManagementClient(
    credentials=credentials, subscription_id=subscription_id, base_url=base_url
)
group = resource_management_client.resource_groups.create_or_update(
    resource_group_name, {"location": "eastus"}
)
log(f"resource group: {group.name} in {group.location}")

# --- Azure file share with the MNIST sample script and data ---
azure_file_share_name = "batchaiquickstart"
service = FileService(connection_string=storage_connection_string)
service.create_share(azure_file_share_name, fail_on_exist=False)
mnist_dataset_directory = "mnistcntksample"
service.create_directory(azure_file_share_name, mnist_dataset_directory, fail_on_exist=False)
for f in ["Train-28x28_cntk_text.txt", "Test-28x28_cntk_text.txt", "ConvNet_MNIST.py"]:
    service.create_file_from_path(
        azure_file_share_name, mnist_dataset_directory, f, os.path.join(sample_dir, f)
    )
    log(f"uploaded: {azure_file_share_name}/{mnist_dataset_directory}/{f}")

# --- GPU cluster ---
cluster_name = "mycluster"
relative_mount_point = "azurefileshare"
parameters = models.ClusterCreateParameters(
    # Location where the cluster will physically be deployed
    location="eastus",
    # VM size. Use NC or NV series for GPU
    vm_size="STANDARD_NC6",
    # Configure the ssh users
    user_account_settings=models.UserAccountSettings(
        admin_user_name=admin_user_name, admin_user_password=admin_user_password
    ),
    # Number of VMs in the cluster
    scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1)),
    # Configure each node in the cluster
    node_setup=models.NodeSetup(
        # Mount shared volumes to the host
        mount_volumes=models.MountVolumes(
            azure_file_shares=[
                models.AzureFileShareReference(
                    account_name=storage_account_name,
                    credentials=models.AzureStorageCredentialsInfo(account_key=storage_account_key),
                    azure_file_url=(
                        f"https://{storage_account_name}.file.core.windows.net/"
                        f"{azure_file_share_name}"
                    ),
                    relative_mount_path=relative_mount_point,
                )
            ],
        ),
    ),
)
batchai_client.clusters.create(resource_group_name, cluster_name, parameters).result()


def describe_cluster():
    cluster = batchai_client.clusters.get(resource_group_name, cluster_name)
    counts = cluster.node_state_counts
    log(
        f"Cluster state: {cluster.allocation_state.name} "
        f"Target: {cluster.scale_settings.manual.target_node_count}; "
        f"Allocated: {cluster.current_node_count}; Idle: {counts.idle_node_count}; "
        f"Unusable: {counts.unusable_node_count}; Running: {counts.running_node_count}; "
        f"Preparing: {counts.preparing_node_count}; Leaving: {counts.leaving_node_count}"
    )
    return cluster


cluster = wait(describe_cluster, lambda c: c.node_state_counts.idle_node_count >= 1)

# --- CNTK training job ---
job_name = "myjob"
parameters = models.job_create_parameters.JobCreateParameters(
    # Location where the job will run; ideally co-located with the cluster
    location="eastus",
    # The cluster this job will run on
    cluster=models.ResourceId(cluster.id),
    # The number of VMs in the cluster to use
    node_count=1,
    # Write std out and std err to the Azure Files share
    std_out_err_path_prefix=f"$AZ_BATCHAI_MOUNT_ROOT/{relative_mount_point}",
    input_directories=[
        models.InputDirectory(
            id="SAMPLE",
            path=f"$AZ_BATCHAI_MOUNT_ROOT/{relative_mount_point}/{mnist_dataset_directory}",
        )
    ],
    # Directories the job writes its results to
    output_directories=[
        models.OutputDirectory(
            id="MODEL",
            path_prefix=f"$AZ_BATCHAI_MOUNT_ROOT/{relative_mount_point}",
            path_suffix="Models",
        )
    ],
    # Container configuration
    container_settings=models.ContainerSettings(
        models.ImageSourceRegistry(image="microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0")
    ),
    # Toolkit specific settings
    cntk_settings=models.CNTKsettings(
        python_script_file_path="$AZ_BATCHAI_INPUT_SAMPLE/ConvNet_MNIST.py",
        command_line_args="$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL",
    ),
)
batchai_client.jobs.create(resource_group_name, job_name, parameters).result()


def describe_job():
    job = batchai_client.jobs.get(resource_group_name, job_name)
    log(f"Job state: {job.execution_state.name}")
    return job


finished = (models.ExecutionState.succeeded, models.ExecutionState.failed)
job = wait(describe_job, lambda j: j.execution_state in finished)
if job.execution_state != models.ExecutionState.succeeded:
    sys.exit(f"job failed: exit code {job.execution_info.exit_code}")

# --- list and download the job's output files ---
os.makedirs(download_dir, exist_ok=True)
for output_directory_id in ["stdouterr", "MODEL"]:
    files = batchai_client.jobs.list_output_files(
        resource_group_name, job_name, models.JobsListOutputFilesOptions(output_directory_id)
    )
    for file in list(files):
        log(f"file: {file.name}, download url: {file.download_url.split('?')[0]}")
        response = requests.get(file.download_url, timeout=30)
        response.raise_for_status()
        target = os.path.join(download_dir, output_directory_id)
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, file.name), "wb") as out:
            out.write(response.content)

# --- clean up ---
batchai_client.jobs.delete(resource_group_name, job_name).result()
log(f"deleted job {job_name}")
batchai_client.clusters.delete(resource_group_name, cluster_name).result()
log(f"deleted cluster {cluster_name}")
resource_management_client.resource_groups.delete(resource_group_name)
wait(
    lambda: resource_management_client.resource_groups.check_existence(resource_group_name),
    lambda exists: not exists,
)
log(f"deleted resource group {resource_group_name}")
