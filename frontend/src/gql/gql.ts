/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  subscription RefetchOnTaskEvents {\n    taskEvents {\n      taskID\n    }\n  }\n": typeof types.RefetchOnTaskEventsDocument,
    "\n  fragment CallerStatsFields on DashboardStats {\n    running\n    queueDepth\n    generatedAt\n    perCaller {\n      caller\n      apiKeyID\n      weight\n      running\n      queued\n      share\n      fairShare\n    }\n  }\n": typeof types.CallerStatsFieldsFragmentDoc,
    "\n  query CallersStats {\n    dashboardStats {\n      ...CallerStatsFields\n    }\n  }\n": typeof types.CallersStatsDocument,
    "\n  subscription CallersStatsLive {\n    dashboardStatsUpdated {\n      ...CallerStatsFields\n    }\n  }\n": typeof types.CallersStatsLiveDocument,
    "\n  query CostAndUsage($days: Int!) {\n    costReport(days: $days) {\n      cost\n      estimated\n      byModel {\n        modelID\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      byCaller {\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      days {\n        date\n        cost\n        estimated\n        byModel {\n          name\n          cost\n        }\n        byCaller {\n          name\n          cost\n        }\n      }\n    }\n    myUsage {\n      name\n      weight\n      day {\n        period\n        used\n        limit\n        resetsAt\n      }\n      month {\n        period\n        used\n        limit\n        resetsAt\n      }\n    }\n  }\n": typeof types.CostAndUsageDocument,
    "\n  query ModelEdit($id: ID!) {\n    model(id: $id) {\n      id\n      name\n      type\n      status\n      maxWorkers\n      description\n      config\n      deletedAt\n    }\n  }\n": typeof types.ModelEditDocument,
    "\n  mutation CreateModel($input: CreateModelInput!) {\n    createModel(input: $input) {\n      ...ModelListFields\n    }\n  }\n": typeof types.CreateModelDocument,
    "\n  mutation UpdateModel($id: ID!, $input: UpdateModelInput!) {\n    updateModel(id: $id, input: $input) {\n      ...ModelListFields\n    }\n  }\n": typeof types.UpdateModelDocument,
    "\n  fragment ModelListFields on Model {\n    id\n    name\n    type\n    status\n    maxWorkers\n    description\n    config\n    updatedAt\n    deletedAt\n  }\n": typeof types.ModelListFieldsFragmentDoc,
    "\n  query ModelList {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          ...ModelListFields\n        }\n      }\n    }\n  }\n": typeof types.ModelListDocument,
    "\n  subscription ModelLoad {\n    dashboardStatsUpdated {\n      perModel {\n        modelID\n        running\n        queued\n      }\n    }\n  }\n": typeof types.ModelLoadDocument,
    "\n  mutation SetModelStatus($id: ID!, $status: ModelStatus!) {\n    setModelStatus(id: $id, status: $status) {\n      ...ModelListFields\n    }\n  }\n": typeof types.SetModelStatusDocument,
    "\n  mutation DeleteModel($id: ID!) {\n    deleteModel(id: $id) {\n      ...ModelListFields\n    }\n  }\n": typeof types.DeleteModelDocument,
    "\n  fragment DashboardStatsFields on DashboardStats {\n    totalTasks\n    pending\n    running\n    completed\n    failed\n    cancelled\n    successRate\n    throughputPerMinute\n    queueDepth\n    totalModels\n    onlineModels\n    avgDurationMs\n    generatedAt\n    perModel {\n      modelID\n      name\n      status\n      maxWorkers\n      running\n      queued\n    }\n  }\n": typeof types.DashboardStatsFieldsFragmentDoc,
    "\n  query OverviewStats {\n    dashboardStats {\n      ...DashboardStatsFields\n    }\n  }\n": typeof types.OverviewStatsDocument,
    "\n  subscription OverviewStatsLive {\n    dashboardStatsUpdated {\n      ...DashboardStatsFields\n    }\n  }\n": typeof types.OverviewStatsLiveDocument,
    "\n  subscription OverviewTaskEvents {\n    taskEvents {\n      taskID\n      from\n      to\n      at\n    }\n  }\n": typeof types.OverviewTaskEventsDocument,
    "\n  query TasksPerDay($days: Int!) {\n    taskStatsByDate(days: $days) {\n      date\n      total\n      pending\n      running\n      completed\n      failed\n      cancelled\n    }\n  }\n": typeof types.TasksPerDayDocument,
    "\n  fragment APIKeyRow on APIKey {\n    id\n    name\n    role\n    prefix\n    weight\n    tokensPerDay\n    tokensPerMonth\n    modelBudgets {\n      modelID\n      tokensPerDay\n      tokensPerMonth\n    }\n    revokedAt\n    usage {\n      day {\n        used\n        limit\n      }\n      month {\n        used\n        limit\n      }\n    }\n  }\n": typeof types.ApiKeyRowFragmentDoc,
    "\n  query APIKeys {\n    apiKeys {\n      ...APIKeyRow\n    }\n  }\n": typeof types.ApiKeysDocument,
    "\n  mutation CreateAPIKey($input: CreateAPIKeyInput!) {\n    createAPIKey(input: $input) {\n      secret\n      apiKey {\n        ...APIKeyRow\n      }\n    }\n  }\n": typeof types.CreateApiKeyDocument,
    "\n  mutation UpdateAPIKey($id: ID!, $input: UpdateAPIKeyInput!) {\n    updateAPIKey(id: $id, input: $input) {\n      ...APIKeyRow\n    }\n  }\n": typeof types.UpdateApiKeyDocument,
    "\n  query SystemHealth {\n    systemHealth {\n      status\n      mode\n      version\n      time\n      database {\n        ok\n        latencyMs\n        error\n      }\n      redis {\n        ok\n        latencyMs\n        error\n      }\n      workers {\n        ok\n        count\n        error\n      }\n    }\n  }\n": typeof types.SystemHealthDocument,
    "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      ...TaskRowFields\n    }\n  }\n": typeof types.CreateTaskDocument,
    "\n  fragment TaskDetailFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    params\n    output\n    embedding\n    error\n    attempts\n    maxRetries\n    timeoutSeconds\n    promptTokens\n    completionTokens\n    totalTokens\n    tokenSource\n    pendingReason\n    pendingDetail\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    nextAttemptAt\n    runAt\n    model {\n      id\n      name\n      type\n      status\n    }\n    attemptHistory {\n      id\n      number\n      status\n      error\n      errorKind\n      output\n      worker\n      promptTokens\n      completionTokens\n      tokenSource\n      finishReason\n      startedAt\n      finishedAt\n    }\n    callbackURL\n    webhookDeliveries {\n      id\n      event\n      status\n      attempts\n      nextAttemptAt\n      lastStatusCode\n      lastError\n      deliveredAt\n      attemptHistory {\n        id\n        number\n        statusCode\n        error\n        durationMs\n        startedAt\n      }\n    }\n  }\n": typeof types.TaskDetailFieldsFragmentDoc,
    "\n  query TaskDetail($id: ID!) {\n    task(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n": typeof types.TaskDetailDocument,
    "\n  subscription TaskDetailLive($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n": typeof types.TaskDetailLiveDocument,
    "\n  subscription TaskOutputLive($id: ID!) {\n    taskOutput(id: $id) {\n      attempt\n      seq\n      text\n      done\n    }\n  }\n": typeof types.TaskOutputLiveDocument,
    "\n  query TaskList($first: Int!, $after: Cursor, $where: TaskWhereInput) {\n    tasks(first: $first, after: $after, where: $where, orderBy: [{ field: CREATED_AT, direction: DESC }]) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      edges {\n        node {\n          ...TaskRowFields\n        }\n      }\n    }\n  }\n": typeof types.TaskListDocument,
    "\n  subscription TaskListEvents($filter: TaskEventFilter) {\n    taskEvents(filter: $filter) {\n      taskID\n      modelID\n      priority\n      type\n      from\n      to\n      attempt\n      error\n      at\n      task {\n        ...TaskRowFields\n      }\n    }\n  }\n": typeof types.TaskListEventsDocument,
    "\n  fragment TaskRowFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    attempts\n    maxRetries\n    error\n    pendingReason\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    model {\n      id\n      name\n    }\n  }\n": typeof types.TaskRowFieldsFragmentDoc,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n": typeof types.CancelTaskDocument,
    "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n": typeof types.RetryTaskDocument,
    "\n  query ModelChoices {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          id\n          name\n          type\n          status\n          deletedAt\n        }\n      }\n    }\n  }\n": typeof types.ModelChoicesDocument,
};
const documents: Documents = {
    "\n  subscription RefetchOnTaskEvents {\n    taskEvents {\n      taskID\n    }\n  }\n": types.RefetchOnTaskEventsDocument,
    "\n  fragment CallerStatsFields on DashboardStats {\n    running\n    queueDepth\n    generatedAt\n    perCaller {\n      caller\n      apiKeyID\n      weight\n      running\n      queued\n      share\n      fairShare\n    }\n  }\n": types.CallerStatsFieldsFragmentDoc,
    "\n  query CallersStats {\n    dashboardStats {\n      ...CallerStatsFields\n    }\n  }\n": types.CallersStatsDocument,
    "\n  subscription CallersStatsLive {\n    dashboardStatsUpdated {\n      ...CallerStatsFields\n    }\n  }\n": types.CallersStatsLiveDocument,
    "\n  query CostAndUsage($days: Int!) {\n    costReport(days: $days) {\n      cost\n      estimated\n      byModel {\n        modelID\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      byCaller {\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      days {\n        date\n        cost\n        estimated\n        byModel {\n          name\n          cost\n        }\n        byCaller {\n          name\n          cost\n        }\n      }\n    }\n    myUsage {\n      name\n      weight\n      day {\n        period\n        used\n        limit\n        resetsAt\n      }\n      month {\n        period\n        used\n        limit\n        resetsAt\n      }\n    }\n  }\n": types.CostAndUsageDocument,
    "\n  query ModelEdit($id: ID!) {\n    model(id: $id) {\n      id\n      name\n      type\n      status\n      maxWorkers\n      description\n      config\n      deletedAt\n    }\n  }\n": types.ModelEditDocument,
    "\n  mutation CreateModel($input: CreateModelInput!) {\n    createModel(input: $input) {\n      ...ModelListFields\n    }\n  }\n": types.CreateModelDocument,
    "\n  mutation UpdateModel($id: ID!, $input: UpdateModelInput!) {\n    updateModel(id: $id, input: $input) {\n      ...ModelListFields\n    }\n  }\n": types.UpdateModelDocument,
    "\n  fragment ModelListFields on Model {\n    id\n    name\n    type\n    status\n    maxWorkers\n    description\n    config\n    updatedAt\n    deletedAt\n  }\n": types.ModelListFieldsFragmentDoc,
    "\n  query ModelList {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          ...ModelListFields\n        }\n      }\n    }\n  }\n": types.ModelListDocument,
    "\n  subscription ModelLoad {\n    dashboardStatsUpdated {\n      perModel {\n        modelID\n        running\n        queued\n      }\n    }\n  }\n": types.ModelLoadDocument,
    "\n  mutation SetModelStatus($id: ID!, $status: ModelStatus!) {\n    setModelStatus(id: $id, status: $status) {\n      ...ModelListFields\n    }\n  }\n": types.SetModelStatusDocument,
    "\n  mutation DeleteModel($id: ID!) {\n    deleteModel(id: $id) {\n      ...ModelListFields\n    }\n  }\n": types.DeleteModelDocument,
    "\n  fragment DashboardStatsFields on DashboardStats {\n    totalTasks\n    pending\n    running\n    completed\n    failed\n    cancelled\n    successRate\n    throughputPerMinute\n    queueDepth\n    totalModels\n    onlineModels\n    avgDurationMs\n    generatedAt\n    perModel {\n      modelID\n      name\n      status\n      maxWorkers\n      running\n      queued\n    }\n  }\n": types.DashboardStatsFieldsFragmentDoc,
    "\n  query OverviewStats {\n    dashboardStats {\n      ...DashboardStatsFields\n    }\n  }\n": types.OverviewStatsDocument,
    "\n  subscription OverviewStatsLive {\n    dashboardStatsUpdated {\n      ...DashboardStatsFields\n    }\n  }\n": types.OverviewStatsLiveDocument,
    "\n  subscription OverviewTaskEvents {\n    taskEvents {\n      taskID\n      from\n      to\n      at\n    }\n  }\n": types.OverviewTaskEventsDocument,
    "\n  query TasksPerDay($days: Int!) {\n    taskStatsByDate(days: $days) {\n      date\n      total\n      pending\n      running\n      completed\n      failed\n      cancelled\n    }\n  }\n": types.TasksPerDayDocument,
    "\n  fragment APIKeyRow on APIKey {\n    id\n    name\n    role\n    prefix\n    weight\n    tokensPerDay\n    tokensPerMonth\n    modelBudgets {\n      modelID\n      tokensPerDay\n      tokensPerMonth\n    }\n    revokedAt\n    usage {\n      day {\n        used\n        limit\n      }\n      month {\n        used\n        limit\n      }\n    }\n  }\n": types.ApiKeyRowFragmentDoc,
    "\n  query APIKeys {\n    apiKeys {\n      ...APIKeyRow\n    }\n  }\n": types.ApiKeysDocument,
    "\n  mutation CreateAPIKey($input: CreateAPIKeyInput!) {\n    createAPIKey(input: $input) {\n      secret\n      apiKey {\n        ...APIKeyRow\n      }\n    }\n  }\n": types.CreateApiKeyDocument,
    "\n  mutation UpdateAPIKey($id: ID!, $input: UpdateAPIKeyInput!) {\n    updateAPIKey(id: $id, input: $input) {\n      ...APIKeyRow\n    }\n  }\n": types.UpdateApiKeyDocument,
    "\n  query SystemHealth {\n    systemHealth {\n      status\n      mode\n      version\n      time\n      database {\n        ok\n        latencyMs\n        error\n      }\n      redis {\n        ok\n        latencyMs\n        error\n      }\n      workers {\n        ok\n        count\n        error\n      }\n    }\n  }\n": types.SystemHealthDocument,
    "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      ...TaskRowFields\n    }\n  }\n": types.CreateTaskDocument,
    "\n  fragment TaskDetailFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    params\n    output\n    embedding\n    error\n    attempts\n    maxRetries\n    timeoutSeconds\n    promptTokens\n    completionTokens\n    totalTokens\n    tokenSource\n    pendingReason\n    pendingDetail\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    nextAttemptAt\n    runAt\n    model {\n      id\n      name\n      type\n      status\n    }\n    attemptHistory {\n      id\n      number\n      status\n      error\n      errorKind\n      output\n      worker\n      promptTokens\n      completionTokens\n      tokenSource\n      finishReason\n      startedAt\n      finishedAt\n    }\n    callbackURL\n    webhookDeliveries {\n      id\n      event\n      status\n      attempts\n      nextAttemptAt\n      lastStatusCode\n      lastError\n      deliveredAt\n      attemptHistory {\n        id\n        number\n        statusCode\n        error\n        durationMs\n        startedAt\n      }\n    }\n  }\n": types.TaskDetailFieldsFragmentDoc,
    "\n  query TaskDetail($id: ID!) {\n    task(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n": types.TaskDetailDocument,
    "\n  subscription TaskDetailLive($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n": types.TaskDetailLiveDocument,
    "\n  subscription TaskOutputLive($id: ID!) {\n    taskOutput(id: $id) {\n      attempt\n      seq\n      text\n      done\n    }\n  }\n": types.TaskOutputLiveDocument,
    "\n  query TaskList($first: Int!, $after: Cursor, $where: TaskWhereInput) {\n    tasks(first: $first, after: $after, where: $where, orderBy: [{ field: CREATED_AT, direction: DESC }]) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      edges {\n        node {\n          ...TaskRowFields\n        }\n      }\n    }\n  }\n": types.TaskListDocument,
    "\n  subscription TaskListEvents($filter: TaskEventFilter) {\n    taskEvents(filter: $filter) {\n      taskID\n      modelID\n      priority\n      type\n      from\n      to\n      attempt\n      error\n      at\n      task {\n        ...TaskRowFields\n      }\n    }\n  }\n": types.TaskListEventsDocument,
    "\n  fragment TaskRowFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    attempts\n    maxRetries\n    error\n    pendingReason\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    model {\n      id\n      name\n    }\n  }\n": types.TaskRowFieldsFragmentDoc,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n": types.CancelTaskDocument,
    "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n": types.RetryTaskDocument,
    "\n  query ModelChoices {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          id\n          name\n          type\n          status\n          deletedAt\n        }\n      }\n    }\n  }\n": types.ModelChoicesDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription RefetchOnTaskEvents {\n    taskEvents {\n      taskID\n    }\n  }\n"): (typeof documents)["\n  subscription RefetchOnTaskEvents {\n    taskEvents {\n      taskID\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment CallerStatsFields on DashboardStats {\n    running\n    queueDepth\n    generatedAt\n    perCaller {\n      caller\n      apiKeyID\n      weight\n      running\n      queued\n      share\n      fairShare\n    }\n  }\n"): (typeof documents)["\n  fragment CallerStatsFields on DashboardStats {\n    running\n    queueDepth\n    generatedAt\n    perCaller {\n      caller\n      apiKeyID\n      weight\n      running\n      queued\n      share\n      fairShare\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CallersStats {\n    dashboardStats {\n      ...CallerStatsFields\n    }\n  }\n"): (typeof documents)["\n  query CallersStats {\n    dashboardStats {\n      ...CallerStatsFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription CallersStatsLive {\n    dashboardStatsUpdated {\n      ...CallerStatsFields\n    }\n  }\n"): (typeof documents)["\n  subscription CallersStatsLive {\n    dashboardStatsUpdated {\n      ...CallerStatsFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CostAndUsage($days: Int!) {\n    costReport(days: $days) {\n      cost\n      estimated\n      byModel {\n        modelID\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      byCaller {\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      days {\n        date\n        cost\n        estimated\n        byModel {\n          name\n          cost\n        }\n        byCaller {\n          name\n          cost\n        }\n      }\n    }\n    myUsage {\n      name\n      weight\n      day {\n        period\n        used\n        limit\n        resetsAt\n      }\n      month {\n        period\n        used\n        limit\n        resetsAt\n      }\n    }\n  }\n"): (typeof documents)["\n  query CostAndUsage($days: Int!) {\n    costReport(days: $days) {\n      cost\n      estimated\n      byModel {\n        modelID\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      byCaller {\n        name\n        cost\n        promptTokens\n        completionTokens\n        attempts\n        estimated\n      }\n      days {\n        date\n        cost\n        estimated\n        byModel {\n          name\n          cost\n        }\n        byCaller {\n          name\n          cost\n        }\n      }\n    }\n    myUsage {\n      name\n      weight\n      day {\n        period\n        used\n        limit\n        resetsAt\n      }\n      month {\n        period\n        used\n        limit\n        resetsAt\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ModelEdit($id: ID!) {\n    model(id: $id) {\n      id\n      name\n      type\n      status\n      maxWorkers\n      description\n      config\n      deletedAt\n    }\n  }\n"): (typeof documents)["\n  query ModelEdit($id: ID!) {\n    model(id: $id) {\n      id\n      name\n      type\n      status\n      maxWorkers\n      description\n      config\n      deletedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateModel($input: CreateModelInput!) {\n    createModel(input: $input) {\n      ...ModelListFields\n    }\n  }\n"): (typeof documents)["\n  mutation CreateModel($input: CreateModelInput!) {\n    createModel(input: $input) {\n      ...ModelListFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateModel($id: ID!, $input: UpdateModelInput!) {\n    updateModel(id: $id, input: $input) {\n      ...ModelListFields\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateModel($id: ID!, $input: UpdateModelInput!) {\n    updateModel(id: $id, input: $input) {\n      ...ModelListFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ModelListFields on Model {\n    id\n    name\n    type\n    status\n    maxWorkers\n    description\n    config\n    updatedAt\n    deletedAt\n  }\n"): (typeof documents)["\n  fragment ModelListFields on Model {\n    id\n    name\n    type\n    status\n    maxWorkers\n    description\n    config\n    updatedAt\n    deletedAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ModelList {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          ...ModelListFields\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query ModelList {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          ...ModelListFields\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription ModelLoad {\n    dashboardStatsUpdated {\n      perModel {\n        modelID\n        running\n        queued\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription ModelLoad {\n    dashboardStatsUpdated {\n      perModel {\n        modelID\n        running\n        queued\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetModelStatus($id: ID!, $status: ModelStatus!) {\n    setModelStatus(id: $id, status: $status) {\n      ...ModelListFields\n    }\n  }\n"): (typeof documents)["\n  mutation SetModelStatus($id: ID!, $status: ModelStatus!) {\n    setModelStatus(id: $id, status: $status) {\n      ...ModelListFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteModel($id: ID!) {\n    deleteModel(id: $id) {\n      ...ModelListFields\n    }\n  }\n"): (typeof documents)["\n  mutation DeleteModel($id: ID!) {\n    deleteModel(id: $id) {\n      ...ModelListFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment DashboardStatsFields on DashboardStats {\n    totalTasks\n    pending\n    running\n    completed\n    failed\n    cancelled\n    successRate\n    throughputPerMinute\n    queueDepth\n    totalModels\n    onlineModels\n    avgDurationMs\n    generatedAt\n    perModel {\n      modelID\n      name\n      status\n      maxWorkers\n      running\n      queued\n    }\n  }\n"): (typeof documents)["\n  fragment DashboardStatsFields on DashboardStats {\n    totalTasks\n    pending\n    running\n    completed\n    failed\n    cancelled\n    successRate\n    throughputPerMinute\n    queueDepth\n    totalModels\n    onlineModels\n    avgDurationMs\n    generatedAt\n    perModel {\n      modelID\n      name\n      status\n      maxWorkers\n      running\n      queued\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query OverviewStats {\n    dashboardStats {\n      ...DashboardStatsFields\n    }\n  }\n"): (typeof documents)["\n  query OverviewStats {\n    dashboardStats {\n      ...DashboardStatsFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription OverviewStatsLive {\n    dashboardStatsUpdated {\n      ...DashboardStatsFields\n    }\n  }\n"): (typeof documents)["\n  subscription OverviewStatsLive {\n    dashboardStatsUpdated {\n      ...DashboardStatsFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription OverviewTaskEvents {\n    taskEvents {\n      taskID\n      from\n      to\n      at\n    }\n  }\n"): (typeof documents)["\n  subscription OverviewTaskEvents {\n    taskEvents {\n      taskID\n      from\n      to\n      at\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query TasksPerDay($days: Int!) {\n    taskStatsByDate(days: $days) {\n      date\n      total\n      pending\n      running\n      completed\n      failed\n      cancelled\n    }\n  }\n"): (typeof documents)["\n  query TasksPerDay($days: Int!) {\n    taskStatsByDate(days: $days) {\n      date\n      total\n      pending\n      running\n      completed\n      failed\n      cancelled\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment APIKeyRow on APIKey {\n    id\n    name\n    role\n    prefix\n    weight\n    tokensPerDay\n    tokensPerMonth\n    modelBudgets {\n      modelID\n      tokensPerDay\n      tokensPerMonth\n    }\n    revokedAt\n    usage {\n      day {\n        used\n        limit\n      }\n      month {\n        used\n        limit\n      }\n    }\n  }\n"): (typeof documents)["\n  fragment APIKeyRow on APIKey {\n    id\n    name\n    role\n    prefix\n    weight\n    tokensPerDay\n    tokensPerMonth\n    modelBudgets {\n      modelID\n      tokensPerDay\n      tokensPerMonth\n    }\n    revokedAt\n    usage {\n      day {\n        used\n        limit\n      }\n      month {\n        used\n        limit\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query APIKeys {\n    apiKeys {\n      ...APIKeyRow\n    }\n  }\n"): (typeof documents)["\n  query APIKeys {\n    apiKeys {\n      ...APIKeyRow\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateAPIKey($input: CreateAPIKeyInput!) {\n    createAPIKey(input: $input) {\n      secret\n      apiKey {\n        ...APIKeyRow\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateAPIKey($input: CreateAPIKeyInput!) {\n    createAPIKey(input: $input) {\n      secret\n      apiKey {\n        ...APIKeyRow\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateAPIKey($id: ID!, $input: UpdateAPIKeyInput!) {\n    updateAPIKey(id: $id, input: $input) {\n      ...APIKeyRow\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateAPIKey($id: ID!, $input: UpdateAPIKeyInput!) {\n    updateAPIKey(id: $id, input: $input) {\n      ...APIKeyRow\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query SystemHealth {\n    systemHealth {\n      status\n      mode\n      version\n      time\n      database {\n        ok\n        latencyMs\n        error\n      }\n      redis {\n        ok\n        latencyMs\n        error\n      }\n      workers {\n        ok\n        count\n        error\n      }\n    }\n  }\n"): (typeof documents)["\n  query SystemHealth {\n    systemHealth {\n      status\n      mode\n      version\n      time\n      database {\n        ok\n        latencyMs\n        error\n      }\n      redis {\n        ok\n        latencyMs\n        error\n      }\n      workers {\n        ok\n        count\n        error\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      ...TaskRowFields\n    }\n  }\n"): (typeof documents)["\n  mutation CreateTask($input: CreateTaskInput!) {\n    createTask(input: $input) {\n      ...TaskRowFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskDetailFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    params\n    output\n    embedding\n    error\n    attempts\n    maxRetries\n    timeoutSeconds\n    promptTokens\n    completionTokens\n    totalTokens\n    tokenSource\n    pendingReason\n    pendingDetail\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    nextAttemptAt\n    runAt\n    model {\n      id\n      name\n      type\n      status\n    }\n    attemptHistory {\n      id\n      number\n      status\n      error\n      errorKind\n      output\n      worker\n      promptTokens\n      completionTokens\n      tokenSource\n      finishReason\n      startedAt\n      finishedAt\n    }\n    callbackURL\n    webhookDeliveries {\n      id\n      event\n      status\n      attempts\n      nextAttemptAt\n      lastStatusCode\n      lastError\n      deliveredAt\n      attemptHistory {\n        id\n        number\n        statusCode\n        error\n        durationMs\n        startedAt\n      }\n    }\n  }\n"): (typeof documents)["\n  fragment TaskDetailFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    params\n    output\n    embedding\n    error\n    attempts\n    maxRetries\n    timeoutSeconds\n    promptTokens\n    completionTokens\n    totalTokens\n    tokenSource\n    pendingReason\n    pendingDetail\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    nextAttemptAt\n    runAt\n    model {\n      id\n      name\n      type\n      status\n    }\n    attemptHistory {\n      id\n      number\n      status\n      error\n      errorKind\n      output\n      worker\n      promptTokens\n      completionTokens\n      tokenSource\n      finishReason\n      startedAt\n      finishedAt\n    }\n    callbackURL\n    webhookDeliveries {\n      id\n      event\n      status\n      attempts\n      nextAttemptAt\n      lastStatusCode\n      lastError\n      deliveredAt\n      attemptHistory {\n        id\n        number\n        statusCode\n        error\n        durationMs\n        startedAt\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query TaskDetail($id: ID!) {\n    task(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n"): (typeof documents)["\n  query TaskDetail($id: ID!) {\n    task(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskDetailLive($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n"): (typeof documents)["\n  subscription TaskDetailLive($id: ID!) {\n    taskUpdated(id: $id) {\n      ...TaskDetailFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskOutputLive($id: ID!) {\n    taskOutput(id: $id) {\n      attempt\n      seq\n      text\n      done\n    }\n  }\n"): (typeof documents)["\n  subscription TaskOutputLive($id: ID!) {\n    taskOutput(id: $id) {\n      attempt\n      seq\n      text\n      done\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query TaskList($first: Int!, $after: Cursor, $where: TaskWhereInput) {\n    tasks(first: $first, after: $after, where: $where, orderBy: [{ field: CREATED_AT, direction: DESC }]) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      edges {\n        node {\n          ...TaskRowFields\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query TaskList($first: Int!, $after: Cursor, $where: TaskWhereInput) {\n    tasks(first: $first, after: $after, where: $where, orderBy: [{ field: CREATED_AT, direction: DESC }]) {\n      totalCount\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n      edges {\n        node {\n          ...TaskRowFields\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskListEvents($filter: TaskEventFilter) {\n    taskEvents(filter: $filter) {\n      taskID\n      modelID\n      priority\n      type\n      from\n      to\n      attempt\n      error\n      at\n      task {\n        ...TaskRowFields\n      }\n    }\n  }\n"): (typeof documents)["\n  subscription TaskListEvents($filter: TaskEventFilter) {\n    taskEvents(filter: $filter) {\n      taskID\n      modelID\n      priority\n      type\n      from\n      to\n      attempt\n      error\n      at\n      task {\n        ...TaskRowFields\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskRowFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    attempts\n    maxRetries\n    error\n    pendingReason\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    model {\n      id\n      name\n    }\n  }\n"): (typeof documents)["\n  fragment TaskRowFields on Task {\n    id\n    type\n    priority\n    status\n    input\n    attempts\n    maxRetries\n    error\n    pendingReason\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    model {\n      id\n      name\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n"): (typeof documents)["\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n"): (typeof documents)["\n  mutation RetryTask($id: ID!) {\n    retryTask(id: $id) {\n      ...TaskRowFields\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ModelChoices {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          id\n          name\n          type\n          status\n          deletedAt\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query ModelChoices {\n    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {\n      edges {\n        node {\n          id\n          name\n          type\n          status\n          deletedAt\n        }\n      }\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;